//! The executor: one wasmtime [`Engine`], components compiled once (and
//! cached on disk), pre-linked into an `InstancePre`, and a fresh instance
//! per call that is dropped when the call returns.

mod cache;
mod closed_wasi;
mod deadline;
mod engine;
mod pure;
mod wasm_kind;

pub use cache::CompileCache;
pub use closed_wasi::{closed_ctx, ClosedOutput, CLOSED_WASI_PACKAGES};
pub use deadline::Deadlines;
pub use engine::{new_engine, EngineOptions};
pub use pure::{CallError, CallOutput, PureComponent, PureLinker};

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::Engine;

/// Every import of a component, as `package/interface@version` or a bare
/// function name; what `nebula check` prints.
pub fn imports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every export of a component.
pub fn exports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The imports a pure component may not have: anything outside the closed
/// WASI set.
pub fn forbidden_imports(imports: &[String]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| !closed_wasi::is_closed_wasi(i))
        .cloned()
        .collect()
}

/// Loads a component through the compile cache.
pub fn load(
    engine: &Engine,
    cache: &CompileCache,
    path: &std::path::Path,
) -> Result<(Component, cache::Origin)> {
    cache.load(engine, path)
}
