//! Core WebAssembly modules made into components at load, as Spin's own
//! componentize step does, so that what Spin accepts Nebula accepts: a
//! module built by wit-bindgen (for `wasm32-unknown-unknown`, as Spin's
//! conformance tests are, or for `wasm32-wasip1` with an older Spin SDK)
//! carries its WIT world in a `component-type` custom section, from which
//! `wit-component` builds the component; a module that imports WASI
//! preview 1 gets wasmtime's preview 1 adapter (the reactor build: Spin
//! components are libraries, not commands) to run on WASI 0.2.
//!
//! The result is deterministic for a given input, so the compile cache
//! keys it like any component and a later start maps the compiled entry
//! without componentizing again.

use std::path::Path;

use anyhow::{Context, Result};

/// The module name WASI preview 1 imports come from.
const PREVIEW1: &str = "wasi_snapshot_preview1";

/// The component made from the core module `bytes` read from `path`.
pub fn componentize(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let imports = module_imports(bytes)
        .with_context(|| format!("{} is not a valid WebAssembly module", path.display()))?;
    if !has_component_type(bytes) {
        anyhow::bail!(
            "{} is a core WebAssembly module without the `component-type` section wit-bindgen \
             embeds, so it cannot be made into a component (modules from Spin SDKs before 2.0 \
             are not supported); build it as a component (the wasm32-wasip2 target, or \
             `wasm-tools component new`) or with a current Spin SDK",
            path.display()
        );
    }
    let mut encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .with_context(|| format!("{}: cannot read its component type", path.display()))?;
    if imports.iter().any(|m| m == PREVIEW1) {
        encoder = encoder
            .adapter(
                PREVIEW1,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
            .context("cannot load the WASI preview 1 adapter")?;
    }
    encoder.encode().with_context(|| {
        format!(
            "{} is a core module that cannot be made into a component",
            path.display()
        )
    })
}

/// The module names a core module imports from.
fn module_imports(bytes: &[u8]) -> Result<Vec<String>> {
    let mut modules = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ImportSection(section) = payload? {
            for import in section.into_imports() {
                let import = import?;
                if !modules.iter().any(|m| m == import.module) {
                    modules.push(import.module.to_string());
                }
            }
        }
    }
    Ok(modules)
}

/// Whether the module carries wit-bindgen's `component-type*` custom section.
fn has_component_type(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .filter_map(Result::ok)
        .any(|p| matches!(p, wasmparser::Payload::CustomSection(c) if c.name().starts_with("component-type")))
}
