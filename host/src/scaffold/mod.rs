//! `nebula new LANG NAME`: a working component from a template, in the folder
//! `NAME/` beside the manifest, and its component and route added to the
//! manifest (created if there is none) with its comments and layout kept.

mod manifest_edit;
mod templates;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use templates::Lang;

use crate::manifest::Manifest;
use crate::router::Pattern;

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The component's language.
    pub lang: Lang,
    /// The component's name: its folder, its key in [components] and its
    /// default route.
    pub name: String,
    /// The route that serves it (default: /NAME).
    #[arg(long)]
    pub route: Option<String>,
    /// The app manifest to add it to; created if missing.
    #[arg(short = 'f', long = "file", default_value = "app.toml")]
    pub file: PathBuf,
}

/// What `nebula new` made, for the message it prints.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub route: String,
    pub manifest_created: bool,
}

pub fn new_component(args: &NewArgs) -> Result<Created> {
    check_name(&args.name)?;
    let route = args
        .route
        .clone()
        .unwrap_or_else(|| format!("/{}", args.name));
    Pattern::parse(&route).map_err(|e| anyhow::anyhow!("--route: {e}"))?;

    let file = &args.file;
    let (text, manifest_created) = match std::fs::read_to_string(file) {
        Ok(t) => (t, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (new_manifest(file), true),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    if crate::spin::manifest::SpinManifest::is_spin_manifest(file, &text) {
        bail!(
            "{} is a Spin manifest; `nebula new` adds components to a Nebula app.toml (give one with -f)",
            file.display()
        );
    }
    let current = Manifest::parse(file, &text)
        .with_context(|| format!("fix {} before adding a component to it", file.display()))?;
    refuse_collisions(&current, &args.name, &route)?;
    let dir = current.base_dir.join(&args.name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or remove it",
            dir.display()
        );
    }

    let template = args.lang.template();
    let fill = |s: &str| templates::fill(s, &args.name);
    let entry = manifest_edit::Entry {
        name: &args.name,
        lang: args.lang,
        source: format!("{}/{}", args.name, fill(template.output)),
        command: fill(template.command),
        workdir: args.name.clone(),
        watch: template.watch.iter().map(|w| w.to_string()).collect(),
        route: route.clone(),
    };
    let edited = manifest_edit::add(&text, &entry)
        .with_context(|| format!("cannot add {:?} to {}", args.name, file.display()))?;
    // The edit must leave a manifest `nebula up` accepts.
    Manifest::parse(file, &edited).map_err(|e| {
        anyhow::anyhow!(
            "adding {:?} would make {} invalid: {e}",
            args.name,
            file.display()
        )
    })?;

    write_files(&dir, template, &args.name)?;
    write_atomically(file, &edited)?;
    Ok(Created {
        dir,
        route,
        manifest_created,
    })
}

fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("component name {name:?}: use lower-case letters, digits, '-' and '_', starting with a letter (at most 64), e.g. \"hello\" or \"meme-stats\"");
    }
    Ok(())
}

fn refuse_collisions(m: &Manifest, name: &str, route: &str) -> Result<()> {
    if m.components.contains_key(name) {
        bail!(
            "{} already has a component named {name:?}; choose another name",
            m.file.display()
        );
    }
    if let Some(r) = m
        .routes
        .iter()
        .find(|r| r.pattern.source() == route && r.methods.iter().any(|m| m == "GET"))
    {
        bail!(
            "route {route} is already served by component {:?} in {}; give another with --route",
            r.component,
            m.file.display()
        );
    }
    if let Some(st) = &m.static_files {
        if crate::host::static_files::strip_prefix(route, &st.prefix).is_some() {
            bail!(
                "route {route} is under the static files' prefix {}, so it would never reach a component; give another with --route",
                st.prefix
            );
        }
    }
    Ok(())
}

/// The manifest `nebula new` starts an app with, named after its folder.
fn new_manifest(file: &Path) -> String {
    let folder = std::path::absolute(file)
        .ok()
        .and_then(|p| Some(p.parent()?.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let name: String = folder
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "# A Nebula app, created by `nebula new`. The manifest reference is in\n\
         # Nebula's README (\"Manifest reference\").\n\n[app]\nname = {}\n",
        toml_edit::Value::from(name)
    )
}

fn write_files(dir: &Path, template: &templates::Template, name: &str) -> Result<()> {
    let mut files: Vec<(&str, String)> = template
        .files
        .iter()
        .map(|(path, text)| (*path, templates::fill(text, name)))
        .collect();
    files.push(("wit/function.wit", templates::PURE_WIT.to_string()));
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A manifest is never left half-written: a running `nebula up` or an editor
/// reads either the old text or the new one.
fn write_atomically(file: &Path, text: &str) -> Result<()> {
    let tmp = file.with_extension("toml.nebula-new");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, name: &str, route: Option<&str>) -> NewArgs {
        NewArgs {
            lang: Lang::Rust,
            name: name.into(),
            route: route.map(String::from),
            file: dir.join("app.toml"),
        }
    }

    #[test]
    fn creates_a_manifest_and_the_component_folder() {
        let dir = tempfile::tempdir().unwrap();
        let made = new_component(&args(dir.path(), "hello", None)).unwrap();
        assert!(made.manifest_created);
        assert_eq!(made.route, "/hello");
        let m = Manifest::load(&dir.path().join("app.toml")).unwrap();
        let c = &m.components["hello"];
        assert_eq!(c.source, dir.path().join("hello/hello.wasm"));
        let build = c.build.as_ref().unwrap();
        assert_eq!(build.workdir, dir.path().join("hello"));
        assert!(build.watch.contains(&dir.path().join("hello/src")));
        assert_eq!(m.routes[0].pattern.source(), "/hello");
        assert_eq!(m.routes[0].component, "hello");
        let lib = std::fs::read_to_string(dir.path().join("hello/src/lib.rs")).unwrap();
        assert!(lib.contains("Hello from hello, a pure function in Rust!"));
        let wit = std::fs::read_to_string(dir.path().join("hello/wit/function.wit")).unwrap();
        assert!(wit.contains("world pure"));
        let cargo = std::fs::read_to_string(dir.path().join("hello/Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"hello\"") && cargo.contains("[workspace]"));
    }

    #[test]
    fn refuses_an_existing_name_or_route_and_leaves_everything_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        new_component(&args(dir.path(), "hello", None)).unwrap();
        let before = std::fs::read_to_string(dir.path().join("app.toml")).unwrap();

        let e = new_component(&args(dir.path(), "hello", Some("/other")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has a component named \"hello\""), "{e}");
        let e = new_component(&args(dir.path(), "second", Some("/hello")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("route /hello is already served by component \"hello\""),
            "{e}"
        );
        assert!(!dir.path().join("second").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.toml")).unwrap(),
            before
        );
    }

    #[test]
    fn refuses_bad_names_and_routes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["Hello", "../x", "", "9lives", "a b"] {
            let e = new_component(&args(dir.path(), bad, None)).unwrap_err();
            assert!(e.to_string().contains("component name"), "{bad}: {e}");
        }
        let e = new_component(&args(dir.path(), "x", Some("no-slash"))).unwrap_err();
        assert!(e.to_string().contains("--route"), "{e}");
        assert!(!dir.path().join("app.toml").exists());
    }
}
