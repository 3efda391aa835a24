//! The broken manifests of `tests/manifests`: each `NAME.toml` gives the
//! error in `NAME.err` beside it (regenerate with NEBULA_BLESS=1 and read
//! the diff). app.toml's reader and spin.toml's check their own cases with
//! this, each taking the files [`SpinManifest::is_spin_manifest`] gives it,
//! as `nebula up` would.
//!
//! [`SpinManifest::is_spin_manifest`]: crate::spin::manifest::SpinManifest::is_spin_manifest

use std::path::Path;

use crate::spin::manifest::SpinManifest;

/// Which reader a case is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    AppToml,
    SpinToml,
}

/// Checks every case `reader` reads against its `.err` file and returns the
/// cases' file names. `parse` is the reader: its error, or `Ok` if the
/// manifest was accepted.
pub(crate) fn check_broken_manifests(
    reader: Reader,
    parse: impl Fn(&Path, &str) -> Result<(), String>,
) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let bless = std::env::var_os("NEBULA_BLESS").is_some();
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let is_spin = SpinManifest::is_spin_manifest(Path::new(&name), &text);
        if is_spin != (reader == Reader::SpinToml) {
            continue;
        }
        let err = match parse(Path::new(&name), &text) {
            Ok(()) => panic!("{name}: expected an error, the manifest was accepted"),
            Err(e) => e,
        };
        let expected_path = path.with_extension("err");
        if bless {
            std::fs::write(&expected_path, format!("{err}\n")).unwrap();
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
                panic!(
                    "{name}: no {} (run with NEBULA_BLESS=1)",
                    expected_path.display()
                )
            });
            assert_eq!(err, expected.trim_end(), "{name}");
        }
        assert!(
            err.starts_with(&format!("{name}:")),
            "{name}: the message must start with the file: {err}"
        );
        cases.push(name);
    }
    cases
}
