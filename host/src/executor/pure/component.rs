//! Calling a pure component: a fresh instance per call from its pre-linked
//! `InstancePre`, under a deadline and a memory cap, dropped on return.

use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::contract::{PurePre, Request, Response, Table};
use crate::executor::closed_wasi::{closed_ctx, ClosedOutput};
use crate::executor::Deadlines;
use crate::metrics::PeakLimits;

/// Function-table entries one instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: PeakLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The linker every pure component is pre-linked with: the closed WASI set
/// and nothing else, so a component importing anything more fails to link.
pub struct PureLinker {
    linker: Linker<HostState>,
}

impl PureLinker {
    pub fn new(engine: &Engine) -> Result<PureLinker> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Ok(PureLinker { linker })
    }
}

pub struct PureComponent {
    name: String,
    pre: PurePre<HostState>,
}

/// What a call produced besides its response.
pub struct CallOutput {
    pub response: Response,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time of making the instance, and of the `handle` call.
    pub instantiate: Duration,
    pub call: Duration,
    /// The largest linear memory the instance grew to, in bytes.
    pub memory_peak: usize,
}

#[derive(Debug)]
pub enum CallError {
    /// The guest ran past its deadline.
    Timeout { stderr: Vec<u8> },
    /// The guest trapped or panicked; the message says where.
    Trap { message: String, stderr: Vec<u8> },
}

impl PureComponent {
    /// Pre-links `component`; fails with a clear message if it does not
    /// export the pure world or imports more than the closed WASI set.
    pub fn new(name: &str, component: &Component, linker: &PureLinker) -> Result<PureComponent> {
        let instance_pre = linker
            .linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {name:?} imports something a pure component may not (run `nebula check`)"))?;
        let pre = PurePre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
            format!("component {name:?} does not export the pure world's `handle(request, data) -> response` (wit/pure)")
        })?;
        Ok(PureComponent {
            name: name.to_string(),
            pre,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pre-linked component.
    pub fn instance_pre(&self) -> &wasmtime::component::InstancePre<HostState> {
        self.pre.instance_pre()
    }

    pub async fn call(
        &self,
        deadlines: &Deadlines,
        timeout: Duration,
        max_memory: usize,
        request: Request,
        data: Vec<Table>,
    ) -> Result<CallOutput, CallError> {
        let (wasi, ClosedOutput { stdout, stderr }) = closed_ctx(request.seed, request.now_ms);
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: PeakLimits::new(
                StoreLimitsBuilder::new()
                    .memory_size(max_memory)
                    .table_elements(MAX_TABLE_ELEMENTS)
                    .instances(16)
                    .build(),
                None,
            ),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let deadline = std::time::Instant::now() + timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| Ok(Deadlines::yield_until(deadline)));

        let _in_flight = deadlines.enter();
        let started = std::time::Instant::now();
        let mut instantiated = started;
        let call = async {
            let pure = self.pre.instantiate_async(&mut store).await?;
            instantiated = std::time::Instant::now();
            pure.call_handle(&mut store, &request, &data).await
        };
        // The epoch trap above only fires while guest code runs: a guest
        // waiting in a host call (a sleep, a pollable that never becomes
        // ready) runs none, so the wall clock bounds the whole call too.
        // Dropping the call at the deadline unwinds the guest's stack; the
        // store, and with it the instance, goes right after.
        // Most calls end within their first poll (the guest runs to its end
        // without waiting on anything) and need no timer: registering one
        // and taking it out again is a lock on the runtime's timer wheel
        // twice per request. A call that yields (at an epoch tick, or in a
        // host call that waits) is bounded by the wall clock from then on.
        let result = {
            let mut call = std::pin::pin!(call);
            match futures::poll!(call.as_mut()) {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => {
                    match tokio::time::timeout_at(deadline.into(), call).await {
                        Ok(result) => result,
                        Err(_elapsed) => Err(Trap::Interrupt.into()),
                    }
                }
            }
        };
        let finished = std::time::Instant::now();
        let memory_peak = store.data().limits.peak();
        drop(store);
        match result {
            Ok(response) => Ok(CallOutput {
                response,
                stdout: stdout.contents().to_vec(),
                stderr: stderr.contents().to_vec(),
                instantiate: instantiated - started,
                call: finished - instantiated,
                memory_peak,
            }),
            Err(e) => {
                let stderr = stderr.contents().to_vec();
                if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    Err(CallError::Timeout { stderr })
                } else {
                    Err(CallError::Trap {
                        message: format!("{e:?}"),
                        stderr,
                    })
                }
            }
        }
    }
}
