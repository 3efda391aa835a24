//! `nebula check -f spin.toml`: each Spin component's dependencies and the
//! imports they satisfy, then what else it imports and how Nebula serves
//! it, from the component's own grants in the manifest. The
//! host units describe their own imports, so a new unit appears here by
//! being asked in `served_as`.

use std::fmt::Write as _;

use anyhow::Result;
use nebula_spin_interfaces::{granted_list, interface_of, unsupported_feature, HostUnit};

use super::manifest::SpinComponent;
use super::manifest::SpinManifest;
use crate::executor::compose::Plug;
use crate::executor::wasi_http::outbound::OutboundHttp;
use crate::executor::wasi_http::platform_stubs::{is_platform_interface, is_wasi_prerelease};

/// One block per component of `manifest` (`imports_of` gives a loaded
/// component's imports, `plugs_of` which of them its dependencies
/// satisfied): its source, its dependencies, then each import the host
/// serves and how.
pub fn imports_report(
    manifest: &SpinManifest,
    imports_of: impl Fn(&str) -> Option<Vec<String>>,
    plugs_of: impl Fn(&str) -> Option<Vec<Plug>>,
) -> Result<String> {
    let mut text = String::new();
    for c in manifest.components.values() {
        let Some(imports) = imports_of(&c.id) else {
            continue;
        };
        writeln!(text, "component {} ({})", c.id, c.source.display())?;
        dependencies_report(&mut text, c, &plugs_of(&c.id).unwrap_or_default())?;
        writeln!(text, "  imports ({}):", imports.len())?;
        let width = imports.iter().map(|i| i.len()).max().unwrap_or(0);
        for i in &imports {
            writeln!(text, "    {i:width$}  {}", served_as(i, c))?;
        }
    }
    Ok(text)
}

/// Each dependency of `c`, its file and the imports it satisfies, with the
/// export that satisfies each (`plugs`: from the composition at load).
fn dependencies_report(text: &mut String, c: &SpinComponent, plugs: &[Plug]) -> Result<()> {
    if c.dependencies.is_empty() {
        return Ok(());
    }
    writeln!(text, "  dependencies ({}):", c.dependencies.len())?;
    for d in &c.dependencies {
        let key = d.name.to_string();
        writeln!(text, "    \"{key}\" ({})", d.path.display())?;
        for p in plugs.iter().filter(|p| p.dependency == key) {
            if p.export == p.import {
                writeln!(text, "      satisfies {}", p.import)?;
            } else {
                writeln!(
                    text,
                    "      satisfies {} with its export {}",
                    p.import, p.export
                )?;
            }
        }
    }
    Ok(())
}

/// How Nebula serves `import` to component `c`: the host units say so for
/// their own imports (each unit's `serves`); the rest is the WASI that
/// executor/wasi_http builds.
fn served_as(import: &str, c: &SpinComponent) -> String {
    const STUBBED: &str = "not implemented by Nebula: linked as traps, a call fails its request";
    // Before the units: outbound HTTP answers for `wasi:http/client` at any version.
    if is_wasi_prerelease(import) {
        return STUBBED.to_string();
    }
    if let Some(how) = c
        .spin_grants()
        .serves(import)
        .or_else(|| OutboundHttp::serves(import, &c.outbound_http_grants()))
    {
        return how;
    }
    if interface_of(import) == "fermyon:spin/redis-types" {
        return "types only, for a Redis trigger's handler".to_string();
    }
    if is_platform_interface(import) {
        return match unsupported_feature(import) {
            Some(feature) => format!("{STUBBED} ({feature})"),
            None => STUBBED.to_string(),
        };
    }
    let interface = interface_of(import);
    let (package, name) = interface.split_once('/').unwrap_or((interface, ""));
    match (package, name) {
        ("wasi:http", "incoming-handler" | "handler" | "types") => {
            "the request and response".to_string()
        }
        ("wasi:filesystem", _) => {
            let mut mounts: Vec<String> = c.files.iter().map(|f| f.to_string()).collect();
            mounts.extend(c.exclude_files.iter().map(|e| format!("except {e}")));
            format!(
                "read-only, exactly the files `files` matches: {}",
                granted_list(&mounts)
            )
        }
        ("wasi:sockets", _) => {
            let tcp: Vec<&String> = c
                .allowed_outbound_hosts
                .iter()
                .filter(|h| h.starts_with("tcp://") || h.starts_with("*://"))
                .collect();
            if tcp.is_empty() {
                "every address denied (no tcp:// or *:// entry in allowed_outbound_hosts)"
                    .to_string()
            } else {
                format!(
                    "TCP connections to allowed_outbound_hosts only (IP, CIDR or localhost entries with a port): {}",
                    granted_list(&tcp)
                )
            }
        }
        ("wasi:cli", "environment") => format!(
            "the component's `environment`: {}",
            granted_list(&c.environment.keys().collect::<Vec<_>>())
        ),
        ("wasi:cli", "stdout" | "stderr") => {
            "the host log, a line at a time, with the request id".to_string()
        }
        ("wasi:cli", "stdin") => "empty".to_string(),
        ("wasi:clocks", _) => "the real clock, as on Spin".to_string(),
        ("wasi:random", _) => "real randomness, as on Spin".to_string(),
        _ => "served as on Spin".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spin::manifest::SpinManifest;
    use std::path::Path;

    #[test]
    fn each_import_says_what_the_component_was_granted() {
        let m = SpinManifest::parse(
            Path::new("spin.toml"),
            r#"
spin_manifest_version = 2
[application]
name = "a"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:3000"]
[[trigger.http]]
route = "/tcp"
component = "t"
[component.t]
source = "t.wasm"
allowed_outbound_hosts = ["tcp://127.0.0.1:7", "*://10.0.0.0/8:5432", "http://a.example"]
"#,
        )
        .unwrap();
        let c = &m.components["c"];
        assert_eq!(
            served_as("fermyon:spin/key-value@2.0.0", c),
            "stores: default"
        );
        assert_eq!(
            served_as("spin:sqlite/sqlite@3.0.0", c),
            "databases: none granted"
        );
        assert!(served_as("wasi:http/outgoing-handler@0.2.6", c).ends_with("http://127.0.0.1:3000"));
        assert_eq!(
            served_as("spin:mqtt/mqtt@3.0.0", c),
            "outbound MQTT to allowed_outbound_hosts only: none granted"
        );
        assert_eq!(
            served_as("wasi:keyvalue/store@0.2.0-draft2", c),
            "not implemented by Nebula: linked as traps, a call fails its request (key-value through wasi:keyvalue (use Spin's key-value interface))"
        );
        assert_eq!(
            served_as("wasi:http/client@0.3.0-rc-2026-03-15", c),
            "not implemented by Nebula: linked as traps, a call fails its request"
        );
        assert!(served_as("wasi:http/client@0.3.0", c).ends_with("http://127.0.0.1:3000"));
        assert_eq!(
            served_as("wasi:http/types@0.3.0-rc-2026-03-15", c),
            "not implemented by Nebula: linked as traps, a call fails its request"
        );
        assert_eq!(
            served_as("wasi:sockets/tcp@0.2.6", c),
            "every address denied (no tcp:// or *:// entry in allowed_outbound_hosts)"
        );
        assert_eq!(
            served_as("fermyon:spin/llm@2.0.0", c),
            "not implemented by Nebula: linked as traps, a call fails its request (Serverless AI (fermyon:spin/llm): no model runtime in Nebula)"
        );
        assert_eq!(
            served_as("fermyon:spin/redis-types", c),
            "types only, for a Redis trigger's handler"
        );
        assert_eq!(
            served_as("wasi:filesystem/preopens@0.2.6", c),
            "read-only, exactly the files `files` matches: none granted"
        );
        assert_eq!(
            served_as("wasi:sockets/tcp@0.2.6", &m.components["t"]),
            "TCP connections to allowed_outbound_hosts only (IP, CIDR or localhost entries with a port): tcp://127.0.0.1:7, *://10.0.0.0/8:5432"
        );
    }
}
