//! `nebula check`: validates the manifest, its SQL against the schema, and
//! each component against the pure world, listing what each one imports.

use std::fmt::Write as _;

use anyhow::Result;

use crate::data;
use crate::executor::{self, CompileCache, EngineOptions, PureComponent, PureLinker};
use crate::manifest::Manifest;

pub struct Report {
    pub text: String,
    pub ok: bool,
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
