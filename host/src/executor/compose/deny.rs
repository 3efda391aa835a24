//! Deny stubs: what Spin's deny-all adapter gives a dependency for a
//! capability it does not inherit, made here for the one capability that
//! ordinary runtimes import whether or not the code uses it:
//! `wasi:cli/environment@0.2.x` (Rust's std and wasi-libc read the
//! arguments and variables at start). Spin's adapter answers it with no
//! variables, no arguments and no working folder; so does this stub, a
//! component exporting that interface and importing nothing. Every other
//! capability a dependency does not inherit is refused at start
//! ([`super::capabilities`]).

use anyhow::{Context, Result};

/// The interface the stub exports, at `version`, if a stub exists for
/// `import` (a dependency's import name).
pub fn stubbed(import: &str) -> Option<&str> {
    let version = import.strip_prefix("wasi:cli/environment@")?;
    version.starts_with("0.2.").then_some(version)
}

/// The stub component for `wasi:cli/environment@{version}`.
pub fn environment_stub(version: &str) -> Result<Vec<u8>> {
    let wit = format!(
        "package wasi:cli@{version};
interface environment {{
    get-environment: func() -> list<tuple<string, string>>;
    get-arguments: func() -> list<string>;
    initial-cwd: func() -> option<string>;
}}
world deny {{
    export environment;
}}"
    );
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("deny.wit", &wit)?;
    let world = resolve.select_world(&[package], Some("deny"))?;
    // Each function returns a pointer to its result: at 16, zeros, which
    // read as an empty list (pointer 0, length 0) and as `none`.
    let name = format!("wasi:cli/environment@{version}");
    let mut module = wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "{name}#get-environment") (result i32) i32.const 16)
  (func (export "{name}#get-arguments") (result i32) i32.const 16)
  (func (export "{name}#initial-cwd") (result i32) i32.const 16))"#
    ))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
        .with_context(|| format!("making the deny stub for {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_02_environment_is_stubbed() {
        assert_eq!(stubbed("wasi:cli/environment@0.2.6"), Some("0.2.6"));
        assert_eq!(stubbed("wasi:cli/environment@0.2.0"), Some("0.2.0"));
        assert_eq!(stubbed("wasi:cli/environment@0.3.0"), None);
        assert_eq!(stubbed("wasi:filesystem/preopens@0.2.6"), None);
        assert_eq!(stubbed("spin:sqlite/sqlite@3.1.0"), None);
    }

    #[test]
    fn the_stub_exports_the_interface_and_imports_nothing() {
        let bytes = environment_stub("0.2.3").unwrap();
        let engine = wasmtime::Engine::default();
        let c = wasmtime::component::Component::from_binary(&engine, &bytes).unwrap();
        assert!(crate::executor::imports_of(&engine, &c).is_empty());
        assert_eq!(
            crate::executor::exports_of(&engine, &c),
            ["wasi:cli/environment@0.2.3"]
        );
    }
}
