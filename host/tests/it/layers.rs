//! The host's folders read as the request path only if no module leans on
//! one that leans back: this reads every `crate::…` path in host/src and
//! fails on an import cycle between top-level modules, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::repo;

/// Top-level module → the top-level modules its code (tests excluded) names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in walkdir(src) {
        let rel = entry.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if ["main", "lib", "bin"].contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        // A module only tests compile (`#[cfg(test)] mod tests;` and the like).
        if is_test_module(&entry) {
            continue;
        }
        // Unit tests may reach anywhere; only the code counts.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let names = deps.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                names.insert(name);
            }
        }
        // `use super::…` inside a folder stays inside it.
    }
    deps
}

/// Whether the file is a module its parent declares under `#[cfg(test)]`.
fn is_test_module(file: &Path) -> bool {
    let name = file.file_stem().unwrap().to_string_lossy().to_string();
    let dir = file.parent().unwrap();
    let parents = [dir.join("mod.rs"), dir.with_extension("rs")];
    parents.iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|text| {
            let lines: Vec<&str> = text.lines().collect();
            lines.windows(2).any(|w| {
                w[0].trim() == "#[cfg(test)]"
                    && (w[1].trim() == format!("mod {name};")
                        || w[1].trim() == format!("pub(crate) mod {name};"))
            })
        })
    })
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// A cycle through `start`, if there is one.
fn cycle_from(start: &str, deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        start: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in deps.get(node).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(next, start, deps, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(start, start, deps, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_of_the_host_imports_one_that_imports_it_back() {
    let deps = dependencies(&repo().join("host/src"));
    assert!(
        deps.contains_key("host") && deps.contains_key("server"),
        "{deps:?}"
    );
    let cycles: Vec<String> = deps
        .keys()
        .filter_map(|m| cycle_from(m, &deps))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_transport_knows_nothing_of_apps() {
    let deps = dependencies(&repo().join("host/src"));
    let server = &deps["server"];
    for app_side in ["host", "executor", "data", "spin", "model", "app", "router"] {
        assert!(
            !server.contains(app_side),
            "server/ imports crate::{app_side}: transport must not know about apps"
        );
    }
}
