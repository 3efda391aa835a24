//! `nebula check`: validates the manifest, its SQL against the schema, and
//! each component against the pure world, listing what each one imports.

use std::fmt::Write as _;

use anyhow::Result;

use std::path::Path;

use crate::app::AnyManifest;
use crate::data;
use crate::executor::{self, CompileCache, EngineOptions, PureComponent, PureLinker};
use crate::host::{Host, HostOptions};
use crate::manifest::Manifest;
use crate::spin::manifest::SpinManifest;

pub struct Report {
    pub text: String,
    pub ok: bool,
}

/// `nebula check` for either kind of app; `cache_dir` is the compile cache
/// `nebula up` would fill, so that what is checked is what will run.
pub fn check_any(manifest: AnyManifest, cache_dir: &Path) -> Result<Report> {
    match manifest {
        AnyManifest::Pure(m) => check(&m, &CompileCache::new(Some(cache_dir.to_path_buf()))),
        AnyManifest::Spin(m) => check_spin(m, cache_dir),
    }
}

pub fn check(manifest: &Manifest, cache: &CompileCache) -> Result<Report> {
    let mut text = String::new();
    let mut ok = true;
    writeln!(
        text,
        "manifest {}: {} routes, {} components",
        manifest.file.display(),
        manifest.routes.len(),
        manifest.components.len()
    )?;

    // The SQL is checked against a throwaway in-memory copy of the schema.
    let scratch = tempfile_path()?;
    match data::open(manifest, Some(&data::Location::Sqlite(scratch.clone()))) {
        Ok(_) => writeln!(
            text,
            "database: schema, seed and {} reads / {} writes prepare cleanly",
            manifest.reads.len(),
            manifest.writes.len()
        )?,
        Err(e) => {
            ok = false;
            writeln!(text, "database: {e:#}")?;
        }
    }
    let _ = std::fs::remove_dir_all(scratch.parent().expect("temp dir"));

    // The settings `nebula up` runs pure components with, so that what is
    // checked is what will run, and the compile cache it fills is the one
    // `nebula up` reads.
    let engine = executor::new_engine(&EngineOptions {
        max_instances: 4,
        concurrency: false,
        ..Default::default()
    })?;
    let linker = PureLinker::new(&engine)?;
    for c in manifest.components.values() {
        writeln!(text, "component {} ({})", c.name, c.source.display())?;
        if !c.source.exists() {
            ok = false;
            writeln!(text, "  missing: build it with `nebula build {}`", c.name)?;
            continue;
        }
        let component = match executor::load(&engine, cache, &c.source) {
            Ok((component, _)) => component,
            Err(e) => {
                ok = false;
                writeln!(text, "  invalid: {e:#}")?;
                continue;
            }
        };
        let imports = executor::imports_of(&engine, &component);
        let forbidden = executor::forbidden_imports(&imports);
        writeln!(
            text,
            "  exports: {}",
            executor::exports_of(&engine, &component).join(", ")
        )?;
        writeln!(text, "  imports ({}):", imports.len())?;
        let width = imports.iter().map(|i| i.len()).max().unwrap_or(0);
        for i in &imports {
            let how = if forbidden.contains(i) {
                "<- not allowed in a pure component"
            } else {
                served_as(i)
            };
            writeln!(text, "    {i:width$}  {how}")?;
        }
        if !forbidden.is_empty() {
            ok = false;
            writeln!(
                text,
                "  REJECTED: {} imports {} outside the closed WASI set ({})",
                c.name,
                forbidden.join(", "),
                executor::CLOSED_WASI_PACKAGES.join(" ")
            )?;
            continue;
        }
        match PureComponent::new(&c.name, &component, &linker) {
            Ok(_) => writeln!(text, "  ok: pure world")?,
            Err(e) => {
                ok = false;
                writeln!(text, "  REJECTED: {e:#}")?;
            }
        }
    }
    Ok(Report { text, ok })
}

/// How the closed WASI serves an import it allows: what the component gets
/// instead of the outside world (executor/closed_wasi.rs).
fn served_as(import: &str) -> &'static str {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        "wasi:cli/environment" => "closed: no variables, no arguments",
        "wasi:cli/exit" => "ends the call with an error",
        "wasi:cli/stdin" => "closed: empty",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "captured into the host log",
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" => "fixed at the request's now-ms",
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
            "drawn from the request's seed"
        }
        i if i.starts_with("wasi:cli/terminal-") => "closed: not a terminal",
        i if i.starts_with("wasi:filesystem/") => "closed: no directories",
        i if i.starts_with("wasi:sockets/") => "closed: every address denied",
        i if i.starts_with("wasi:io/") => "streams and polling of the closed interfaces",
        i if i.starts_with("nebula:function/types") => "the pure world's types",
        _ => "served closed",
    }
}

fn tempfile_path() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "nebula-check-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("check.db"))
}

/// A Spin app: the manifest's warnings, and every component loaded and
/// linked as the host would serve it.
pub fn check_spin(mut m: SpinManifest, cache_dir: &Path) -> Result<Report> {
    let mut text = String::new();
    for w in &m.warnings {
        writeln!(text, "warning: {w}")?;
    }
    // A variable's value belongs to where the app is deployed: `check` says
    // it is missing and goes on; `up` refuses to start without it.
    for (name, v) in m.variables.iter_mut() {
        let key = nebula_spin_interfaces::variable_env_key(name);
        if v.required && std::env::var_os(&key).is_none() {
            writeln!(text, "warning: variable {name:?} is required and has no value here; `nebula up` needs {key} set")?;
            v.required = false;
            v.default = Some(String::new());
        }
    }
    // Checking must not create the app's stores beside its manifest.
    let scratch = tempfile_path()?;
    let scratch = scratch.parent().expect("temp dir").to_path_buf();
    let app = Host::load_spin(
        m,
        HostOptions {
            data_dir: Some(scratch.clone()),
            cache_dir: Some(cache_dir.to_path_buf()),
            timeout: std::time::Duration::from_secs(30),
            engine: EngineOptions {
                max_instances: 4,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            writeln!(text, "error: {e:#}")?;
            return Ok(Report { text, ok: false });
        }
    };
    let crate::model::Front::Spin(manifest) = &app.model.front else {
        unreachable!("loaded from a spin.toml");
    };
    text.push_str(&crate::spin::check::imports_report(
        manifest,
        |id| app.imports(id),
        |id| app.dependency_plugs(id),
    )?);
    writeln!(text, "routes:")?;
    for (route, component, kind) in app.routes() {
        writeln!(text, "  {route:<24} → {component} ({kind})")?;
    }
    writeln!(text, "ok: {} loads and links", app.model.file.display())?;
    Ok(Report { text, ok: true })
}
