//! The call a Redis trigger makes: a component that exports Spin's
//! `handle-message` — `fermyon:spin/inbound-redis` (spin-sdk 5's
//! `#[redis_component]`, a sync function) or `spin:redis/inbound-redis@3.0.0`
//! (spin-sdk 7's `#[redis_subscriber]`, an async one) — gets each message in
//! a fresh instance, with the limits, deadline, metrics and request ids of an
//! HTTP request. The subscription itself is the trigger's
//! (`crate::trigger::redis`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, Val};
use wasmtime::Engine;

use super::handler::ComponentRuntime;
use crate::executor::{
    CallError, CallFuture, ComponentKind, Deadlines, Executor, MessageFuture, MessageHandler,
};
use crate::metrics::{ComponentStats, RouteStats};

/// The exports that handle Redis messages, newest first.
const EXPORTS: [&str; 2] = ["spin:redis/inbound-redis@3.", "fermyon:spin/inbound-redis"];
const FUNCTION: &str = "handle-message";

/// The Redis handler `component` exports, by its full name, if it has one.
pub fn export_of(engine: &Engine, component: &Component) -> Option<String> {
    let exports = crate::executor::exports_of(engine, component);
    EXPORTS
        .iter()
        .find_map(|prefix| exports.iter().find(|e| e.starts_with(prefix)).cloned())
}

/// A component that handles Redis messages.
pub struct RedisExecutor {
    name: String,
    runtime: Arc<ComponentRuntime>,
    engine: Engine,
    stats: Arc<ComponentStats>,
    export: String,
    deadlines: Deadlines,
}

impl RedisExecutor {
    pub fn new(
        runtime: ComponentRuntime,
        engine: &Engine,
        stats: Arc<ComponentStats>,
        deadlines: Deadlines,
    ) -> Result<Self> {
        let export = export_of(engine, runtime.component())
            .with_context(|| format!("component {:?} exports no Redis handler", runtime.id))?;
        Ok(RedisExecutor {
            name: runtime.id.clone(),
            runtime: Arc::new(runtime),
            engine: engine.clone(),
            stats,
            export,
            deadlines,
        })
    }

    async fn handle(&self, payload: Vec<u8>, id: Arc<str>, route: Arc<RouteStats>) -> Result<()> {
        let _in_flight = self.deadlines.enter();
        let timeout = self.runtime.timeout();
        let run = async {
            let (mut store, instance) = self
                .runtime
                .instantiate_plain(&self.engine, self.stats.clone(), route.clone(), id)
                .await?;
            let interface = instance
                .get_export_index(&mut store, None, &self.export)
                .with_context(|| format!("no export {}", self.export))?;
            let index = instance
                .get_export_index(&mut store, Some(&interface), FUNCTION)
                .with_context(|| format!("{} has no {FUNCTION}", self.export))?;
            let func = instance
                .get_func(&mut store, index)
                .with_context(|| format!("{}.{FUNCTION} is not a function", self.export))?;
            let message = Val::List(payload.into_iter().map(Val::U8).collect());
            let mut results = [Val::Bool(false)];
            let started = Instant::now();
            func.call_async(&mut store, &[message], &mut results)
                .await?;
            self.stats.called(started.elapsed());
            match &results[0] {
                Val::Result(Ok(_)) => Ok(()),
                Val::Result(Err(e)) => anyhow::bail!("the component answered an error: {e:?}"),
                other => anyhow::bail!("unexpected result {other:?}"),
            }
        };
        crate::metrics::cpu::metered(&route, tokio::time::timeout(timeout, run))
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {timeout:?}"))?
    }
}

impl Executor for RedisExecutor {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ComponentKind {
        ComponentKind::SpinRedis
    }

    fn imports(&self) -> Vec<String> {
        crate::executor::imports_of(&self.engine, self.runtime.component())
    }

    fn wants_whole_body(&self) -> bool {
        false
    }

    /// No HTTP route may lead here (the manifest's routes name HTTP
    /// components); if one does, it fails like a trap.
    fn call(&self, _call: crate::executor::Call) -> CallFuture<'_> {
        let name = self.name.clone();
        Box::pin(async move {
            Err(CallError::Trap(format!(
                "component {name:?} handles Redis messages, not HTTP requests"
            )))
        })
    }

    fn message_handler(&self) -> Option<&dyn MessageHandler> {
        Some(self)
    }
}

impl MessageHandler for RedisExecutor {
    fn handle_message(
        &self,
        payload: Vec<u8>,
        id: Arc<str>,
        route: Arc<RouteStats>,
    ) -> MessageFuture<'_> {
        Box::pin(self.handle(payload, id, route))
    }
}
