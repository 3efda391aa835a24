//! Spin component dependencies (`[component.ID.dependencies]`), composed
//! when the component loads.
//!
//! A component may import interfaces that other components export. Each
//! dependency is instantiated beside the component, and every import its key
//! names ([`DependencyName::matches`]) is plugged with the dependency's
//! export of the same name, or of the name its `export` gives, looked up
//! semver-compatibly ([`find_export`]). The result exports exactly what the
//! component exports; what the dependencies import themselves becomes an
//! import of the result, which the host serves like the component's own,
//! under the component's grants — hence [`capabilities`]: a dependency that
//! imports a capability it does not inherit gets Spin's empty answer where
//! [`deny`] has a stub for it (`wasi:cli/environment`), and is refused
//! otherwise.
//!
//! The composed bytes are then cached like any component
//! ([`super::CompileCache::load_bytes`]).

mod capabilities;
mod deny;
mod names;

pub use capabilities::{Inherit, KEYS as INHERIT_KEYS};
pub use names::DependencyName;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use wac_graph::types::{are_semver_compatible, Package, SubtypeChecker, WorldId};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// One dependency with a local source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The key, which names the imports it satisfies.
    pub name: DependencyName,
    /// The dependency's component (or core module with a component type).
    pub path: PathBuf,
    /// The export to plug in, when the dependency names it otherwise than
    /// the import.
    pub export: Option<String>,
    pub inherit: Inherit,
}

/// One import satisfied by a dependency: what `nebula check` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plug {
    /// The dependency's key.
    pub dependency: String,
    pub import: String,
    pub export: String,
}

pub struct Composed {
    pub bytes: Vec<u8>,
    pub plugs: Vec<Plug>,
}

/// Composes component `component` (its bytes `main`) with its dependencies
/// (each with its bytes). Every error names the component, the dependency's
/// key and what to do.
pub fn compose(
    component: &str,
    main: Vec<u8>,
    deps: &[(&Dependency, Vec<u8>)],
) -> Result<Composed> {
    let mut graph = CompositionGraph::new();
    let main = Package::from_bytes(component, None, main, graph.types_mut())
        .with_context(|| format!("component {component:?} cannot be composed"))?;
    let main_world = main.ty();
    let main_package = graph.register_package(main)?;
    let main_node = graph.instantiate(main_package);
    let imports: Vec<String> = graph.types()[main_world].imports.keys().cloned().collect();

    let wanted = match_imports(component, &imports, deps)?;
    let mut checker_cache = HashSet::new();
    let mut stubs = Stubs::default();
    let mut plugs = Vec::new();
    for (i, (dep, bytes)) in deps.iter().enumerate() {
        let key = dep.name.to_string();
        let about = || {
            format!(
                "component {component:?}: dependency {key:?} ({})",
                dep.path.display()
            )
        };
        let package = Package::from_bytes(
            &format!("{component}-dependency-{i}"),
            None,
            bytes.clone(),
            graph.types_mut(),
        )
        .with_context(|| format!("{}: not a valid component", about()))?;
        let world = package.ty();
        let denied: Vec<(String, &str)> = capabilities::denied(
            graph.types()[world].imports.keys().map(String::as_str),
            &dep.inherit,
        )
        .into_iter()
        .map(|(i, key)| (i.to_string(), key))
        .collect();
        let (stubbable, refused): (Vec<_>, Vec<_>) = denied
            .into_iter()
            .partition(|(i, _)| deny::stubbed(i).is_some());
        if !refused.is_empty() {
            bail!("{}: {}", about(), not_inherited(component, &refused));
        }
        let node = {
            let id = graph.register_package(package)?;
            graph.instantiate(id)
        };
        for (import, key) in stubbable {
            let stub = stubs.get(&mut graph, &import)?;
            let import_ty = graph.types()[world].imports[&import];
            let (stub_world, stub_node) = stub;
            let export_ty = graph.types()[stub_world].exports[&import];
            if SubtypeChecker::new(&mut checker_cache)
                .is_subtype(export_ty, graph.types(), import_ty, graph.types())
                .is_err()
            {
                // Not the WASI interface a stub can stand in for.
                bail!(
                    "{}: {}",
                    about(),
                    not_inherited(component, &[(import, key)])
                );
            }
            let alias = graph.alias_instance_export(stub_node, &import)?;
            graph.set_instantiation_argument(node, &import, alias)?;
        }
        for import in wanted.get(&i).into_iter().flatten() {
            let target = dep.export.as_deref().unwrap_or(import);
            let exports = &graph.types()[world].exports;
            let Some(export) = find_export(exports.keys().map(String::as_str), target) else {
                bail!(
                    "{}: exports no {target:?} to satisfy the import {import:?} (it exports: {}); give the name it exports it under with `export = \"...\"`, or a `path` to a component that exports it",
                    about(),
                    list(exports.keys())
                );
            };
            let export = export.to_string();
            let export_ty = exports[&export];
            let import_ty = graph.types()[main_world].imports[import];
            SubtypeChecker::new(&mut checker_cache)
                .is_subtype(export_ty, graph.types(), import_ty, graph.types())
                .map_err(|e| {
                    anyhow!(
                        "{}: its export {export:?} does not match the import {import:?} ({e:#}); build the component and the dependency against the same WIT",
                        about()
                    )
                })?;
            let alias = graph.alias_instance_export(node, &export)?;
            graph.set_instantiation_argument(main_node, import, alias)?;
            plugs.push(Plug {
                dependency: key.clone(),
                import: import.clone(),
                export,
            });
        }
    }
    let exports: Vec<String> = graph.types()[main_world].exports.keys().cloned().collect();
    for name in exports {
        let alias = graph.alias_instance_export(main_node, &name)?;
        graph.export(alias, &name)?;
    }
    // Not validated here: wasmtime validates what it compiles, and a cache
    // hit maps code compiled from these very bytes (validating cost most
    // of a composition's time at every load).
    let bytes = graph
        .encode(EncodeOptions {
            validate: false,
            ..EncodeOptions::default()
        })
        .with_context(|| format!("component {component:?}: composing it with its dependencies"))?;
    Ok(Composed { bytes, plugs })
}

/// Why a dependency may not import `denied` (import, capability key), and
/// what would let it.
fn not_inherited(component: &str, denied: &[(String, &str)]) -> String {
    let imports: Vec<&str> = denied.iter().map(|(i, _)| i.as_str()).collect();
    let mut keys: Vec<&str> = denied.iter().map(|(_, k)| *k).collect();
    keys.sort();
    keys.dedup();
    format!(
        "imports {}, which it may use only if it inherits the component's `{}`, and it does not (Spin denies a dependency every capability by default); if it should, set `dependencies_inherit_configuration = true` in [component.{component}] or `inherit_configuration = [\"{}\"]` on the dependency",
        imports.join(", "),
        keys.join("`, `"),
        keys.join("\", \"")
    )
}

/// The deny stubs of one composition, one instance per interface version,
/// shared by every dependency that needs it (they hold no state).
#[derive(Default)]
struct Stubs(BTreeMap<String, (WorldId, NodeId)>);

impl Stubs {
    /// The stub instance for `import` (one [`deny::stubbed`] accepts).
    fn get(&mut self, graph: &mut CompositionGraph, import: &str) -> Result<(WorldId, NodeId)> {
        let version = deny::stubbed(import).expect("a stubbed import").to_string();
        if let Some(stub) = self.0.get(&version) {
            return Ok(*stub);
        }
        let bytes = deny::environment_stub(&version)?;
        let package = Package::from_bytes(
            &format!("nebula-deny-environment-{version}"),
            None,
            bytes,
            graph.types_mut(),
        )?;
        let world = package.ty();
        let id = graph.register_package(package)?;
        let stub = (world, graph.instantiate(id));
        self.0.insert(version, stub);
        Ok(stub)
    }
}

/// For each dependency (by index), the imports its key names. A key that
/// names none, or an import two keys name, is an error.
fn match_imports(
    component: &str,
    imports: &[String],
    deps: &[(&Dependency, Vec<u8>)],
) -> Result<BTreeMap<usize, Vec<String>>> {
    let mut wanted = BTreeMap::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for (i, (dep, _)) in deps.iter().enumerate() {
        let key = dep.name.to_string();
        let matched: Vec<String> = imports
            .iter()
            .filter(|import| dep.name.matches(import))
            .cloned()
            .collect();
        if matched.is_empty() {
            let candidates: Vec<&String> =
                imports.iter().filter(|i| !is_host_interface(i)).collect();
            let hint = if candidates.is_empty() {
                "it imports only WASI and Spin interfaces, which the host serves".to_string()
            } else {
                format!("its other imports are: {}", list(candidates))
            };
            bail!(
                "component {component:?}: dependency {key:?} satisfies none of the component's imports ({hint}); correct the key or remove the dependency"
            );
        }
        for import in &matched {
            if let Some(other) = taken.insert(import.clone(), key.clone()) {
                bail!(
                    "component {component:?}: the import {import:?} is named by both dependencies {other:?} and {key:?}; keep one of them"
                );
            }
        }
        wanted.insert(i, matched);
    }
    Ok(wanted)
}

/// The export of a dependency that satisfies `target` (an import's name,
/// or the `export` the manifest gives): the same name, else one of a
/// semver-compatible version (`a:b/c@0.1.2` for `a:b/c@0.1.0`), else, for a
/// name given without a version, that interface at any version.
pub fn find_export<'a>(
    exports: impl Iterator<Item = &'a str> + Clone,
    target: &str,
) -> Option<&'a str> {
    exports
        .clone()
        .find(|e| *e == target)
        .or_else(|| exports.clone().find(|e| are_semver_compatible(e, target)))
        .or_else(|| {
            (!target.contains('@'))
                .then(|| exports.clone().find(|e| names::unversioned(e) == target))
                .flatten()
        })
}

/// Interfaces a dependency is never meant to provide: the host's.
fn is_host_interface(import: &str) -> bool {
    ["wasi:", "spin:", "fermyon:"]
        .iter()
        .any(|p| import.starts_with(p))
}

fn list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "nothing".to_string()
    } else {
        v.join(", ")
    }
}

/// Reads `path` for composition: a component as it is, a core module with
/// a component type made into one first, as the component itself would be.
pub fn read_component(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match super::wasm_kind::kind(&bytes, path)? {
        super::wasm_kind::WasmKind::Component => Ok(bytes),
        super::wasm_kind::WasmKind::CoreModule => super::componentize::componentize(&bytes, path),
    }
}

#[cfg(test)]
mod tests;
