//! Each `tests/manifests/NAME.toml` that is not a Spin manifest is a broken
//! app.toml whose expected error message is in `NAME.err` beside it (see
//! [`super::golden`]). The message must name the file, the line and the key.

use std::path::Path;

use super::golden::{check_broken_manifests, Reader};
use super::Manifest;

#[test]
fn every_broken_manifest_gives_its_expected_error() {
    let cases = check_broken_manifests(Reader::AppToml, |file, text| {
        Manifest::parse(file, text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        cases.len() >= 12,
        "only {} manifest cases found",
        cases.len()
    );
    for name in cases {
        assert!(
            !name.starts_with("spin-"),
            "{name} is read as app.toml; spin-* cases are spin.toml's"
        );
    }
}

#[test]
fn the_academemes_manifest_parses() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app.toml");
    let m = Manifest::load(&file).unwrap();
    assert_eq!(m.name, "academemes");
    assert!(m.routes.len() >= 9);
    assert_eq!(m.limits.max_body_bytes, 16384);
    assert!(m.components.contains_key("render"));
}

#[test]
fn a_manifest_that_is_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.toml");
    std::fs::write(&file, b"[app]\nname = \"caf\xe9\"\n").unwrap();
    let e = Manifest::load(&file).unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(
        e.to_string()
            .ends_with(":2: the manifest is not UTF-8 text; save it as UTF-8"),
        "{e}"
    );
}

#[test]
fn limits_have_defaults_and_components_override_them() {
    let m = Manifest::parse(
        Path::new("app.toml"),
        r#"
[limits]
timeout_ms = 3000
queue_size = 0

[components.a]
source = "a.wasm"

[components.b]
source = "b.wasm"
limits = { timeout_ms = 200, max_memory_mb = 16, max_response_bytes = 1000 }

[[routes]]
path = "/"
component = "a"
"#,
    )
    .unwrap();
    let l = &m.limits;
    assert_eq!(l.timeout_ms, Some(3000));
    assert_eq!(l.queue_size, Some(0), "0 is allowed: no queue, 503 at once");
    assert_eq!(l.max_body_bytes, 1 << 20);
    assert_eq!(l.max_response_bytes, 16 << 20);
    assert_eq!(l.header_read_timeout_ms, 10_000);
    assert_eq!(l.body_read_timeout_ms, 30_000);
    assert_eq!(l.shutdown_grace_ms, 10_000);
    assert_eq!(
        l.max_instances, None,
        "resolved with --max-instances at start"
    );
    assert!(m.components["a"].limits.timeout_ms.is_none());
    let b = &m.components["b"].limits;
    assert_eq!(b.timeout_ms, Some(200));
    assert_eq!(b.max_memory_mb, Some(16));
    assert_eq!(b.max_response_bytes, Some(1000));
}

#[test]
fn reads_are_bounded_by_default_and_each_read_may_override() {
    let m = Manifest::parse(
        Path::new("app.toml"),
        r#"
[limits]
read_timeout_ms = 250

[components.a]
source = "a.wasm"

[reads.plain]
sql = "SELECT 1 AS one"

[reads.big]
sql = "SELECT 1 AS one"
max_rows = 50000
max_bytes = 100
timeout_ms = 3000

[reads.pick]
sql = "SELECT :seed AS seed"
bind = { seed = "request.seed" }

[[routes]]
path = "/"
component = "a"
reads = ["plain", "big", "pick"]
"#,
    )
    .unwrap();
    use super::{Binding, ReadLimits};
    assert_eq!(
        m.reads["plain"].limits,
        ReadLimits {
            max_rows: 10_000,
            max_bytes: 4 << 20,
            timeout_ms: 250,
        },
        "[limits] read_* are every read's defaults"
    );
    assert_eq!(
        m.reads["big"].limits,
        ReadLimits {
            max_rows: 50_000,
            max_bytes: 100,
            timeout_ms: 3000,
        }
    );
    assert_eq!(m.reads["pick"].bind["seed"], Binding::Seed);
}
