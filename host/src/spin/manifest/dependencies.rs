//! `[component.ID.dependencies]` and `dependencies_inherit_configuration`:
//! the components that satisfy a component's imports, composed with it at
//! load (`crate::executor::compose`). Only local sources (`path`) can be
//! run: Spin's registry, URL and app-component sources are refused with
//! what to do instead, and every other mistake is an error on its line, as
//! Spin's own manifest checks make it.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::component::ComponentAt;
use crate::executor::compose::{Dependency, DependencyName, Inherit, INHERIT_KEYS};
use crate::manifest::ManifestError;

/// The keys a dependency's table may have in Spin (every source kind).
const KNOWN_KEYS: &[&str] = &[
    "path",
    "export",
    "inherit_configuration",
    "version",
    "registry",
    "package",
    "url",
    "digest",
    "component",
];

/// Every dependency of the component at `at`, paths resolved against
/// `base`; `inherit_all` is `dependencies_inherit_configuration`.
pub(super) fn dependencies(
    at: &ComponentAt,
    base: &Path,
    raw: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    inherit_all: Option<Spanned<toml::Value>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Dependency>, ManifestError> {
    let inherit_all = match inherit_all {
        None => None,
        Some(v) => match v.get_ref() {
            toml::Value::Boolean(b) => Some((*b, v.span())),
            other => {
                return Err(at.error(
                    Some(v.span()),
                    "dependencies_inherit_configuration",
                    format!("expected true or false, found {other}"),
                ))
            }
        },
    };
    let mut out: Vec<Dependency> = Vec::new();
    for (key, value) in raw {
        let key_name = format!("dependencies.\"{}\"", key.get_ref());
        let name: DependencyName = key
            .get_ref()
            .parse()
            .map_err(|m| at.error(Some(key.span()), &key_name, m))?;
        let err = |m: String| at.error(Some(value.span()), &key_name, m);
        let mut dep =
            dependency(base, &name, value.get_ref(), warnings, &at.key, &key_name).map_err(err)?;
        if let Some((all, span)) = &inherit_all {
            if value.get_ref().get("inherit_configuration").is_some() {
                return Err(at.error(
                    Some(span.clone()),
                    "dependencies_inherit_configuration",
                    format!("given with `inherit_configuration` on {key_name}; Spin takes one or the other: remove one"),
                ));
            }
            dep.inherit = if *all { Inherit::All } else { Inherit::Nothing };
        }
        for other in &out {
            if let Some(why) = conflict(&other.name, &name) {
                return Err(at.error(Some(key.span()), &key_name, why));
            }
        }
        out.push(dep);
    }
    Ok(out)
}

/// One dependency's value; the error message is put at its line.
fn dependency(
    base: &Path,
    name: &DependencyName,
    value: &toml::Value,
    warnings: &mut Vec<String>,
    component_key: &str,
    key_name: &str,
) -> Result<Dependency, String> {
    let local = "download the component and give its path instead: { path = \"dependency.wasm\" }";
    let t = match value {
        toml::Value::Table(t) => t,
        toml::Value::String(v) => {
            return Err(format!(
                "{v:?} is a version of a package in a registry, which Nebula does not download; {local}"
            ))
        }
        other => {
            return Err(format!(
                "expected a table such as {{ path = \"dependency.wasm\" }}, found {other}"
            ))
        }
    };
    if let Some(k) = t.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{k}`; a local dependency takes `path`, and optionally `export` and `inherit_configuration`"
        ));
    }
    if t.contains_key("url") {
        return Err(format!(
            "HTTP sources ({{ url = ... }}) are not supported: Nebula downloads nothing; {local}"
        ));
    }
    if ["version", "registry", "package"]
        .iter()
        .any(|k| t.contains_key(*k))
    {
        return Err(format!(
            "registry sources ({{ version = ..., registry = ..., package = ... }}) are not supported: Nebula downloads nothing; {local}"
        ));
    }
    if let Some(c) = t.get("component") {
        return Err(format!(
            "another component of the app as a dependency (component = {c}) is not supported yet; give its .wasm file: {{ path = \"...\" }}"
        ));
    }
    let path = match t.get("path") {
        Some(toml::Value::String(p)) if !p.is_empty() => base.join(p),
        Some(other) => {
            return Err(format!(
                "`path`: expected the path of a .wasm file, found {other}"
            ))
        }
        None => {
            return Err(
                "missing `path`: give the dependency's .wasm file, relative to spin.toml".into(),
            )
        }
    };
    let export = match t.get("export") {
        None => None,
        Some(toml::Value::String(e)) if !e.is_empty() => {
            if name.is_whole_package() {
                return Err(format!(
                    "`export` cannot rename the imports of a whole package ({name}), as in Spin; name one interface in the key (\"{name}/iface\") or remove `export`"
                ));
            }
            Some(e.clone())
        }
        Some(other) => {
            return Err(format!(
                "`export`: expected the name the dependency exports, such as \"ns:pkg/iface@1.0.0\", found {other}"
            ))
        }
    };
    let inherit = match t.get("inherit_configuration") {
        None | Some(toml::Value::Boolean(false)) => Inherit::Nothing,
        Some(toml::Value::Boolean(true)) => Inherit::All,
        Some(toml::Value::Array(keys)) => {
            let mut names = Vec::new();
            for k in keys {
                let Some(k) = k.as_str() else {
                    return Err(format!(
                        "`inherit_configuration`: expected true, false or a list of {}, found {k}",
                        INHERIT_KEYS.join(", ")
                    ));
                };
                // Spin ignores a key it does not know: so does Nebula, aloud.
                if !INHERIT_KEYS.contains(&k) {
                    warnings.push(format!(
                        "{component_key}.{key_name}.inherit_configuration: {k:?} is not a capability Spin knows ({}) and is ignored",
                        INHERIT_KEYS.join(", ")
                    ));
                }
                names.push(k.to_string());
            }
            Inherit::Only(names)
        }
        Some(other) => {
            return Err(format!(
                "`inherit_configuration`: expected true, false or a list of {}, found {other}",
                INHERIT_KEYS.join(", ")
            ))
        }
    };
    Ok(Dependency {
        name: name.clone(),
        path,
        export,
        inherit,
    })
}

/// Why two keys of one component may name the same imports (Spin's
/// `ensure_disjoint`): same package, and neither different interfaces nor
/// incompatible versions keep them apart.
fn conflict(a: &DependencyName, b: &DependencyName) -> Option<String> {
    let (
        DependencyName::Package {
            package: pa,
            interface: ia,
            version: va,
        },
        DependencyName::Package {
            package: pb,
            interface: ib,
            version: vb,
        },
    ) = (a, b)
    else {
        return None;
    };
    if pa != pb {
        return None;
    }
    if let (Some(va), Some(vb)) = (va, vb) {
        if compatible_track(va) != compatible_track(vb) {
            return None;
        }
    }
    if let (Some(ia), Some(ib)) = (ia, ib) {
        if ia != ib {
            return None;
        }
    }
    Some(format!(
        "conflicts with the dependency \"{a}\": both may name the same imports; keep one, or make their interfaces or versions distinct"
    ))
}

/// The part of a version that semver compatibility keeps: the major, or
/// `0.minor`, or all of `0.0.patch` and of a pre-release.
fn compatible_track(v: &semver::Version) -> (u64, u64, u64, String) {
    if !v.pre.is_empty() {
        return (v.major, v.minor, v.patch, v.pre.to_string());
    }
    match (v.major, v.minor) {
        (0, 0) => (0, 0, v.patch, String::new()),
        (0, minor) => (0, minor, 0, String::new()),
        (major, _) => (major, 0, 0, String::new()),
    }
}
