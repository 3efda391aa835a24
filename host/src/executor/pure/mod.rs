//! The pure executor: a component of the pure world gets the request as a
//! record and the rows of its route's reads, and returns a response with the
//! writes it asks for. [`component`] makes and calls the instance;
//! [`convert`] turns HTTP into the world's records and back.

mod component;
pub mod convert;

use std::sync::Arc;

pub use component::{CallError as PureCallError, CallOutput, PureComponent, PureLinker};

use super::{
    log_output, Call, CallError, CallFuture, ComponentKind, Cost, Deadlines, Executor, Outcome,
    Payload,
};

/// A pure component behind [`Executor`].
pub struct PureExecutor {
    component: PureComponent,
    deadlines: Deadlines,
}

impl PureExecutor {
    pub fn new(component: PureComponent, deadlines: Deadlines) -> Self {
        PureExecutor {
            component,
            deadlines,
        }
    }
}

impl Executor for PureExecutor {
    fn name(&self) -> &str {
        self.component.name()
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::Pure
    }

    /// Read from the component when asked (`nebula check`), not at every load.
    fn imports(&self) -> Vec<String> {
        let pre = self.component.instance_pre();
        super::imports_of(pre.engine(), pre.component())
    }

    fn wants_whole_body(&self) -> bool {
        true
    }

    fn call(&self, call: Call) -> CallFuture<'_> {
        Box::pin(self.run(call))
    }
}

impl PureExecutor {
    async fn run(&self, call: Call) -> Result<Outcome, CallError> {
        let (parts, body) = call.request.into_parts();
        let body = match body {
            Payload::Whole(b) => b,
            // The host reads the body first for every component that
            // `wants_whole_body`; a stream here is a host bug, answered 500.
            Payload::Stream(_) => {
                return Err(CallError::Trap(
                    "the pure executor was given a streamed body".into(),
                ))
            }
        };
        let req = http::Request::from_parts(parts, body);
        let wit_req = convert::to_wit_request(
            &call.id,
            &req,
            &call.route,
            call.params,
            call.seed,
            call.now_ms,
        );
        let name = self.component.name();
        let out = self
            .component
            .call(
                &self.deadlines,
                call.limits.timeout,
                call.limits.max_memory_bytes,
                wit_req,
                call.data,
            )
            .await
            .map_err(|e| match e {
                component::CallError::Timeout { stderr } => {
                    log_output(&call.id, name, "stderr", &stderr);
                    CallError::Timeout
                }
                component::CallError::Trap { message, stderr } => {
                    log_output(&call.id, name, "stderr", &stderr);
                    CallError::Trap(message)
                }
            })?;
        log_output(&call.id, name, "stdout", &out.stdout);
        log_output(&call.id, name, "stderr", &out.stderr);
        let mut response = out.response;
        let effects = std::mem::take(&mut response.effects);
        // `{{last_insert_rowid}}` stays in the headers until the effects are
        // applied; the host fills it in then.
        let response = convert::to_http_response(response, None).map_err(CallError::BadResponse)?;
        Ok(Outcome {
            response: response.map(Payload::Whole),
            effects: Some(effects),
            cost: Cost {
                instantiate: Some(out.instantiate),
                call: Some(out.call),
                memory_peak: Some(out.memory_peak),
            },
        })
    }
}

/// Shared so the loader can hand the same component to every route that uses it.
pub type SharedPure = Arc<PureExecutor>;

/// Prepares pure components: the closed WASI set and nothing else.
pub struct PurePreparer {
    linker: Arc<PureLinker>,
    deadlines: Deadlines,
}

impl PurePreparer {
    /// `linker`: made once per engine and shared, since making one (every
    /// WASI function named and hashed) is a large part of loading a small
    /// app on a platform.
    pub fn new(linker: Arc<PureLinker>, deadlines: Deadlines) -> Self {
        PurePreparer { linker, deadlines }
    }
}

impl super::Preparer for PurePreparer {
    fn prepare(
        &self,
        name: &str,
        component: &wasmtime::component::Component,
    ) -> anyhow::Result<Arc<dyn Executor>> {
        let pure = PureComponent::new(name, component, &self.linker)?;
        Ok(Arc::new(PureExecutor::new(pure, self.deadlines.clone())))
    }
}
