//! Spin component dependencies: a spin-sdk 7 app (guests/spin-compat/
//! sdk-deps) whose imports a plain wit-bindgen component (dep-adder)
//! satisfies, composed by `nebula up` from `[component.sdk-deps.dependencies]`;
//! and the start-time errors of a dependency that cannot be composed.

use std::path::PathBuf;

use crate::support::{nebula, nebula_build, repo, succeeded, Server};

const MANIFEST: &str = "guests/spin-compat/sdk-deps/spin.toml";

fn built() {
    nebula_build(MANIFEST);
}

fn release(file: &str) -> PathBuf {
    repo()
        .join("guests/spin-compat/target/wasm32-wasip2/release")
        .join(file)
}

#[test]
fn the_app_calls_into_its_composed_dependency() {
    built();
    let s = Server::start_spin(MANIFEST, &[], &[]);
    let r = s.get("/deps/add?a=2&b=3");
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(r.text(), "5");
    assert_eq!(s.get("/deps/add?a=-7&b=3").text(), "-4");
    // The export plugged in under another name (`export = ...`).
    let r = s.get("/deps/mul?a=4&b=5");
    assert_eq!((r.status, r.text()), (200, "20".to_string()), "{}", s.log());
    assert_eq!(s.get("/deps/add?a=x").status, 400);
}

#[test]
fn check_lists_each_dependency_and_the_imports_it_satisfies() {
    built();
    let out = succeeded(nebula().args(["check", "-f"]).arg(repo().join(MANIFEST)));
    for line in [
        "  dependencies (2):",
        "      satisfies nebula-test:calc/adder@0.1.0\n",
        "      satisfies nebula-test:math/times@0.1.0 with its export nebula-test:calc/mul@0.1.0\n",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(
        !out.contains("    nebula-test:"),
        "an import a dependency satisfies is not left for the host:\n{out}"
    );
}

/// `nebula check` on a copy of the app with `deps` as its dependencies
/// (paths absolute): the failure's output.
fn check_fails_with(deps: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    let text = format!(
        r#"spin_manifest_version = 2
[application]
name = "deps-errors"
[[trigger.http]]
route = "/deps/..."
component = "sdk-deps"
[component.sdk-deps]
source = "{}"
[component.sdk-deps.dependencies]
{deps}
"#,
        release("sdk_deps.wasm").display()
    );
    std::fs::write(&manifest, text).unwrap();
    let out = nebula()
        .args(["check", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{deps}: checked fine:\n{all}");
    all
}

#[test]
fn a_dependency_that_cannot_be_composed_stops_the_start_naming_component_and_key() {
    built();
    let adder = release("dep_adder.wasm");
    let adder = adder.display();
    let full = format!("\"nebula-test:calc/adder@0.1.0\" = {{ path = \"{adder}\" }}\n");
    let times = format!(
        "\"nebula-test:math/times\" = {{ path = \"{adder}\", export = \"nebula-test:calc/mul@0.1.0\" }}\n"
    );

    // A key that names none of the component's imports.
    let e = check_fails_with(&format!(
        "{full}{times}\"nebula-test:calc/divider\" = {{ path = \"{adder}\" }}"
    ));
    assert!(
        e.contains("component \"sdk-deps\": dependency \"nebula-test:calc/divider\" satisfies none of the component's imports"),
        "{e}"
    );

    // A dependency that does not export what the import needs.
    let e = check_fails_with(&format!(
        "{full}\"nebula-test:math/times\" = {{ path = \"{adder}\" }}"
    ));
    assert!(
        e.contains("dependency \"nebula-test:math/times\"")
            && e.contains("exports no \"nebula-test:math/times@0.1.0\""),
        "{e}"
    );
    assert!(
        e.contains("nebula-test:calc/mul@0.1.0"),
        "what it does export: {e}"
    );

    // A dependency file that is not a component.
    let not_wasm = repo().join(MANIFEST);
    let e = check_fails_with(&format!(
        "{times}\"nebula-test:calc/adder@0.1.0\" = {{ path = \"{}\" }}",
        not_wasm.display()
    ));
    assert!(
        e.contains("dependency \"nebula-test:calc/adder@0.1.0\": point its `path` at the dependency's component") && e.contains("is not WebAssembly"),
        "{e}"
    );

    // A registry source: refused when the manifest is read.
    let e = check_fails_with(&format!(
        "{times}\"nebula-test:calc/adder@0.1.0\" = {{ version = \"0.1\", registry = \"registry.example\" }}"
    ));
    assert!(
        e.contains(
            "component.sdk-deps.dependencies.\"nebula-test:calc/adder@0.1.0\": registry sources"
        ),
        "{e}"
    );

    // An import left unsatisfied is the host's to serve, and it cannot.
    let e = check_fails_with(&full);
    assert!(e.contains("nebula-test:math/times"), "{e}");
}
