//! `nebula check -f spin.toml`: what each Spin component imports and how
//! Nebula serves it, from the component's own grants in the manifest.

use std::fmt::Write as _;

use anyhow::Result;

use super::manifest::SpinComponent;
use super::manifest::SpinManifest;

/// One block per component of `manifest` (`imports_of` gives a loaded
/// component's imports): its source, then each import and what serves it.
pub fn imports_report(
    manifest: &SpinManifest,
    imports_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<String> {
    let mut text = String::new();
    for c in manifest.components.values() {
        let Some(imports) = imports_of(&c.id) else {
            continue;
        };
        writeln!(text, "component {} ({})", c.id, c.source.display())?;
        writeln!(text, "  imports ({}):", imports.len())?;
        let width = imports.iter().map(|i| i.len()).max().unwrap_or(0);
        for i in &imports {
            writeln!(text, "    {i:width$}  {}", served_as(i, c))?;
        }
    }
    Ok(text)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none granted".to_string()
    } else {
        items.join(", ")
    }
}

/// How Nebula serves `import` to component `c` (executor/wasi_http builds
/// its WASI; nebula-spin-interfaces its Spin interfaces).
fn served_as(import: &str, c: &SpinComponent) -> String {
    let interface = import.split('@').next().unwrap_or(import);
    let (package, name) = interface.split_once('/').unwrap_or((interface, ""));
    match (package, name) {
        (_, "key-value") => format!("stores: {}", list(&c.key_value_stores)),
        (_, "sqlite") => format!("databases: {}", list(&c.sqlite_databases)),
        (_, "variables") => format!(
            "variables: {}",
            list(&c.variables.keys().cloned().collect::<Vec<_>>())
        ),
        ("wasi:http", "outgoing-handler" | "client") => format!(
            "outbound HTTP to allowed_outbound_hosts only: {}",
            list(&c.allowed_outbound_hosts)
        ),
        ("wasi:http", "incoming-handler" | "handler" | "types") => {
            "the request and response".to_string()
        }
        ("wasi:filesystem", _) => {
            let mut mounts: Vec<String> = c.files.iter().map(|f| f.to_string()).collect();
            mounts.extend(c.exclude_files.iter().map(|e| format!("except {e}")));
            format!(
                "read-only, exactly the files `files` matches: {}",
                list(&mounts)
            )
        }
        ("wasi:sockets", _) => "every address denied".to_string(),
        ("wasi:cli", "environment") => format!(
            "the component's `environment`: {}",
            list(&c.environment.keys().cloned().collect::<Vec<_>>())
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
            served_as("wasi:sockets/tcp@0.2.6", c),
            "every address denied"
        );
        assert_eq!(
            served_as("wasi:filesystem/preopens@0.2.6", c),
            "read-only, exactly the files `files` matches: none granted"
        );
    }
}
