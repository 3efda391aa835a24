//! Imports of Spin's platform world that Nebula does not implement, linked
//! as functions that trap when called.
//!
//! componentize-py builds a component against a whole world and keeps every
//! import of it, used or not: a spin-sdk 5 (Python) component imports the
//! LLM, Redis, MQTT, MySQL and PostgreSQL interfaces, `wasi:keyvalue`,
//! `wasi:config` and the `0.3.0-rc-2026-03-15` prerelease of WASI beside
//! 0.3.0, though its code calls none of them unless the app does. Spin links
//! them all; a host missing one refuses the whole component. So an import
//! Nebula cannot resolve is linked as traps when, and only when, it belongs
//! to Spin's platform ([`is_platform_interface`]): the component loads, the
//! interfaces Nebula does implement work, and a call into one it does not
//! fails that request with a message naming the interface. Any other
//! unresolved import still fails the load, with wasmtime's own message.

use anyhow::Result;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, LinkerInstance, ResourceType};

/// Whether `import` (`package/interface@version`) is part of what Spin
/// gives every component, and so may be stubbed when Nebula lacks it: Spin's
/// own packages, the draft WASI interfaces Spin serves (`wasi:keyvalue`,
/// `wasi:config`, `wasi:otel`), and WASI prereleases that wasmtime 48 no
/// longer implements (it has 0.2.x and 0.3.0).
pub fn is_platform_interface(import: &str) -> bool {
    let package = package_of(import);
    package == "fermyon:spin"
        || package.starts_with("spin:")
        || matches!(package, "wasi:keyvalue" | "wasi:config" | "wasi:otel")
        || is_wasi_prerelease(import)
}

/// Whether `import` is a WASI 0.3 prerelease, which nothing in Nebula
/// serves, whatever its interface.
pub fn is_wasi_prerelease(import: &str) -> bool {
    let version = import.split_once('@').map_or("", |(_, v)| v);
    package_of(import).starts_with("wasi:") && version.starts_with("0.3.0-rc-")
}

fn package_of(import: &str) -> &str {
    let path = import.split_once('@').map_or(import, |(p, _)| p);
    path.split_once('/').map_or(path, |(p, _)| p)
}

/// Pre-instantiates `component` with `linker`, first adding trap stubs for
/// the platform interfaces it imports that `linker` cannot resolve. Gives
/// the names stubbed (empty when `linker` resolves everything, in which case
/// it is used as it is).
pub fn instantiate_pre<T: 'static>(
    linker: &Linker<T>,
    component: &Component,
) -> Result<(InstancePre<T>, Vec<String>)> {
    let first = match linker.instantiate_pre(component) {
        Ok(pre) => return Ok((pre, Vec::new())),
        Err(e) => anyhow::Error::from(e),
    };
    let engine = component.engine();
    let candidates: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(engine)
        .filter(|(name, _)| is_platform_interface(name))
        .map(|(name, item)| (name.to_string(), item.ty))
        .collect();
    let mut linker = linker.clone();
    let mut stubbed = Vec::new();
    let mut error = first;
    // wasmtime names the first import it cannot resolve; each round stubs
    // that one if it is a platform interface, so the loop ends within one
    // round per candidate.
    for _ in 0..=candidates.len() {
        let message = error.to_string();
        let Some((name, item)) = candidates
            .iter()
            .find(|(name, _)| !stubbed.contains(name) && message.contains(&format!("`{name}`")))
        else {
            return Err(error);
        };
        let ComponentItem::ComponentInstance(instance) = item else {
            return Err(error);
        };
        let mut root = linker.root();
        let mut stub = root.instance(name)?;
        for (export, item) in instance.exports(engine) {
            stub_item(&mut stub, name, export, &item.ty)?;
        }
        stubbed.push(name.clone());
        match linker.instantiate_pre(component) {
            Ok(pre) => return Ok((pre, stubbed)),
            Err(e) => error = e.into(),
        }
    }
    Err(error)
}

fn stub_item<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    interface: &str,
    name: &str,
    item: &ComponentItem,
) -> Result<()> {
    let what = format!("{interface}#{name}");
    match item {
        ComponentItem::ComponentFunc(f) if f.async_() => {
            instance.func_new_concurrent(name, move |_, _, _, _| {
                let what = what.clone();
                Box::pin(async move { Err(not_implemented(&what)) })
            })?
        }
        ComponentItem::ComponentFunc(_) => {
            instance.func_new(name, move |_, _, _, _| Err(not_implemented(&what)))?
        }
        // No value of a stubbed resource can be made, since every function
        // that would make one traps.
        ComponentItem::Resource(_) => {
            instance.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?
        }
        // Types need no definition; an interface holds nothing else.
        _ => {}
    }
    Ok(())
}

fn not_implemented(what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "`{what}` is not implemented by Nebula (the component imports it, as every component built for Spin's platform world does; Nebula links it only so the rest of the component runs)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spin_platform_interfaces_are_stubbed() {
        for name in [
            "fermyon:spin/llm@2.0.0",
            "fermyon:spin/mqtt@2.0.0",
            "spin:postgres/postgres@4.2.0",
            "spin:redis/redis@3.0.0",
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:config/store@0.2.0-draft-2024-09-27",
            "wasi:http/types@0.3.0-rc-2026-03-15",
            "wasi:cli/stdout@0.3.0-rc-2026-03-15",
        ] {
            assert!(is_platform_interface(name), "{name}");
        }
        for name in [
            "wasi:http/types@0.3.0",
            "wasi:cli/stdout@0.2.9",
            "wasi:sockets/tcp@0.2.6",
            "nebula:kit/db@0.1.0",
            "my:spin/thing@1.0.0",
            "print",
        ] {
            assert!(!is_platform_interface(name), "{name}");
        }
    }
}
