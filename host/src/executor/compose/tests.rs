//! Composition, end to end on small components written in WAT: the main
//! one calls `add(2, 3)` through its import, and the result is run.

use super::*;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// Imports `import` (an instance with `add: func(s64, s64) -> s64`) and
/// exports `run: func() -> s64`, which returns `add(2, 3)`.
fn main_importing(import: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
  (import "{import}" (instance $adder
    (export "add" (func (param "a" s64) (param "b" s64) (result s64)))))
  (alias export $adder "add" (func $add))
  (core func $add_lowered (canon lower (func $add)))
  (core module $m
    (import "host" "add" (func $add (param i64 i64) (result i64)))
    (func (export "run") (result i64) i64.const 2 i64.const 3 call $add))
  (core instance $host (export "add" (func $add_lowered)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func (export "run") (result s64) (canon lift (core func $i "run"))))"#
    ))
    .unwrap()
}

/// Exports `add` (a + b) as the instance `export`; imports `imports`
/// (instances with one unused function), if any.
fn dependency_exporting(export: &str, imports: &[&str]) -> Vec<u8> {
    let imports: String = imports
        .iter()
        .map(|i| format!("(import \"{i}\" (instance (export \"get-x\" (func))))\n"))
        .collect();
    wat::parse_str(format!(
        r#"(component
  {imports}
  (core module $m
    (func (export "add") (param i64 i64) (result i64) local.get 0 local.get 1 i64.add))
  (core instance $i (instantiate $m))
  (func $add (param "a" s64) (param "b" s64) (result s64) (canon lift (core func $i "add")))
  (instance $adder (export "add" (func $add)))
  (export "{export}" (instance $adder)))"#
    ))
    .unwrap()
}

fn dep(key: &str, export: Option<&str>) -> Dependency {
    Dependency {
        name: key.parse().unwrap(),
        path: PathBuf::from("dep.wasm"),
        export: export.map(str::to_string),
        inherit: Inherit::Nothing,
    }
}

/// Runs the composed component's `run`.
fn run(bytes: &[u8]) -> i64 {
    let engine = Engine::default();
    let component = Component::from_binary(&engine, bytes).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &component)
        .unwrap();
    let f = instance
        .get_typed_func::<(), (i64,)>(&mut store, "run")
        .unwrap();
    f.call(&mut store, ()).unwrap().0
}

fn imports_of(bytes: &[u8]) -> Vec<String> {
    let engine = Engine::default();
    let c = Component::from_binary(&engine, bytes).unwrap();
    crate::executor::imports_of(&engine, &c)
}

const ADDER: &str = "nebula-test:calc/adder@0.1.0";

#[test]
fn every_key_form_plugs_the_dependency_in_and_the_call_reaches_it() {
    for key in [
        "nebula-test:calc/adder@0.1.0",
        "nebula-test:calc/adder",
        "nebula-test:calc",
        "nebula-test:calc@0.1.0",
    ] {
        let d = dep(key, None);
        let composed = compose(
            "app",
            main_importing(ADDER),
            &[(&d, dependency_exporting(ADDER, &[]))],
        )
        .unwrap_or_else(|e| panic!("{key}: {e:#}"));
        assert_eq!(run(&composed.bytes), 5, "{key}");
        assert!(
            imports_of(&composed.bytes).is_empty(),
            "{key}: nothing left to import"
        );
        assert_eq!(
            composed.plugs,
            [Plug {
                dependency: key.to_string(),
                import: ADDER.to_string(),
                export: ADDER.to_string()
            }]
        );
    }
}

#[test]
fn the_export_is_found_by_another_name_or_a_compatible_version() {
    // `export = ...` names it.
    let d = dep(ADDER, Some("other:pkg/sum@2.0.0"));
    let composed = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_exporting("other:pkg/sum@2.0.0", &[]))],
    )
    .unwrap();
    assert_eq!(run(&composed.bytes), 5);
    assert_eq!(composed.plugs[0].export, "other:pkg/sum@2.0.0");

    // The same interface at a semver-compatible version.
    let d = dep(ADDER, None);
    let composed = compose(
        "app",
        main_importing(ADDER),
        &[(
            &d,
            dependency_exporting("nebula-test:calc/adder@0.1.7", &[]),
        )],
    )
    .unwrap();
    assert_eq!(run(&composed.bytes), 5);
    assert_eq!(composed.plugs[0].export, "nebula-test:calc/adder@0.1.7");

    // An `export` given without a version.
    let d = dep(ADDER, Some("other:pkg/sum"));
    let composed = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_exporting("other:pkg/sum@2.0.0", &[]))],
    )
    .unwrap();
    assert_eq!(run(&composed.bytes), 5);
}

#[test]
fn a_key_that_names_no_import_is_an_error_naming_component_and_key() {
    let d = dep("nebula-test:calc/multiplier", None);
    let e = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_exporting(ADDER, &[]))],
    )
    .err()
    .unwrap();
    let e = format!("{e:#}");
    assert!(
        e.contains("component \"app\": dependency \"nebula-test:calc/multiplier\" satisfies none of the component's imports"),
        "{e}"
    );
    assert!(
        e.contains("its other imports are: nebula-test:calc/adder@0.1.0"),
        "{e}"
    );
    assert!(
        e.contains("correct the key or remove the dependency"),
        "{e}"
    );
    // A version in a key is matched exactly, as Spin does.
    let d = dep("nebula-test:calc/adder@0.1.1", None);
    assert!(compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_exporting(ADDER, &[]))]
    )
    .is_err());
}

#[test]
fn a_dependency_without_the_export_is_an_error_saying_what_it_exports() {
    let d = dep(ADDER, None);
    let e = compose(
        "app",
        main_importing(ADDER),
        &[(
            &d,
            dependency_exporting("nebula-test:calc/adder@0.2.0", &[]),
        )],
    )
    .err()
    .unwrap();
    let e = format!("{e:#}");
    assert!(
        e.contains("component \"app\": dependency \"nebula-test:calc/adder@0.1.0\" (dep.wasm): exports no \"nebula-test:calc/adder@0.1.0\""),
        "{e}"
    );
    assert!(
        e.contains("it exports: nebula-test:calc/adder@0.2.0"),
        "{e}"
    );
    assert!(e.contains("`export = \"...\"`"), "{e}");

    let d = dep(ADDER, Some("other:pkg/sum"));
    let e = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_exporting(ADDER, &[]))],
    )
    .err()
    .unwrap();
    assert!(
        format!("{e:#}").contains("exports no \"other:pkg/sum\""),
        "{e:#}"
    );
}

#[test]
fn a_dependency_that_is_not_a_component_is_an_error() {
    let d = dep(ADDER, None);
    let module = wat::parse_str("(module)").unwrap();
    let e = compose("app", main_importing(ADDER), &[(&d, module)])
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(
        e.contains("dependency \"nebula-test:calc/adder@0.1.0\" (dep.wasm): not a valid component"),
        "{e}"
    );
}

#[test]
fn two_keys_naming_one_import_are_an_error() {
    let (a, b) = (dep("nebula-test:calc", None), dep(ADDER, None));
    let bytes = dependency_exporting(ADDER, &[]);
    let e = compose(
        "app",
        main_importing(ADDER),
        &[(&a, bytes.clone()), (&b, bytes)],
    )
    .err()
    .unwrap();
    assert!(
        format!("{e}").contains("is named by both dependencies"),
        "{e}"
    );
}

#[test]
fn capabilities_a_dependency_does_not_inherit_are_refused() {
    let imports = ["spin:sqlite/sqlite@3.1.0", "wasi:io/error@0.2.6"];
    let bytes = dependency_exporting(ADDER, &imports);
    let d = dep(ADDER, None);
    let e = compose("app", main_importing(ADDER), &[(&d, bytes.clone())])
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(e.contains("imports spin:sqlite/sqlite@3.1.0, which it may use only if it inherits the component's `sqlite_databases`"), "{e}");
    assert!(!e.contains("wasi:io/error"), "not a capability: {e}");
    assert!(
        e.contains("dependencies_inherit_configuration = true"),
        "{e}"
    );
    assert!(
        e.contains("inherit_configuration = [\"sqlite_databases\"]"),
        "{e}"
    );

    // Inherited: the dependency's imports become the composition's, for
    // the host to serve.
    for inherit in [Inherit::All, Inherit::Only(vec!["sqlite_databases".into()])] {
        let d = Dependency {
            inherit,
            ..dep(ADDER, None)
        };
        let composed = compose("app", main_importing(ADDER), &[(&d, bytes.clone())]).unwrap();
        let mut imports_now = imports_of(&composed.bytes);
        imports_now.sort();
        assert_eq!(
            imports_now,
            ["spin:sqlite/sqlite@3.1.0", "wasi:io/error@0.2.6"]
        );
    }
}

/// dep-adder's `add`, which also reads its arguments through
/// `wasi:cli/environment@0.2.6` and adds how many there are.
fn dependency_reading_its_arguments() -> Vec<u8> {
    wat::parse_str(
        r#"(component
  (import "wasi:cli/environment@0.2.6" (instance $env
    (export "get-arguments" (func (result (list string))))))
  (core module $mem_m
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      global.get $next local.set $p
      global.get $next local.get 3 i32.add global.set $next
      local.get $p))
  (core instance $mem (instantiate $mem_m))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))
  (alias export $env "get-arguments" (func $get_args))
  (core func $get_args_lowered (canon lower (func $get_args) (memory $memory) (realloc $realloc)))
  (core module $m
    (import "mem" "memory" (memory 1))
    (import "env" "get-arguments" (func $get_args (param i32)))
    (func (export "add") (param i64 i64) (result i64)
      i32.const 64 i32.const 7 i32.store
      i32.const 68 i32.const 7 i32.store
      i32.const 64 call $get_args
      local.get 0 local.get 1 i64.add
      i32.const 68 i32.load i64.extend_i32_u i64.add))
  (core instance $env_core (export "get-arguments" (func $get_args_lowered)))
  (core instance $i (instantiate $m (with "mem" (instance $mem)) (with "env" (instance $env_core))))
  (func $add (param "a" s64) (param "b" s64) (result s64) (canon lift (core func $i "add")))
  (instance $adder (export "add" (func $add)))
  (export "nebula-test:calc/adder@0.1.0" (instance $adder)))"#,
    )
    .unwrap()
}

#[test]
fn an_environment_not_inherited_is_empty_as_in_spin() {
    let d = dep(ADDER, None);
    let composed = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_reading_its_arguments())],
    )
    .unwrap();
    assert!(
        imports_of(&composed.bytes).is_empty(),
        "the stub, not the host, answers"
    );
    // 2 + 3 + no arguments (the length slot was 7 before the call).
    assert_eq!(run(&composed.bytes), 5);

    // Inherited, the host serves it.
    let d = Dependency {
        inherit: Inherit::Only(vec!["environment".into()]),
        ..dep(ADDER, None)
    };
    let composed = compose(
        "app",
        main_importing(ADDER),
        &[(&d, dependency_reading_its_arguments())],
    )
    .unwrap();
    assert_eq!(imports_of(&composed.bytes), ["wasi:cli/environment@0.2.6"]);

    // An import of that name the stub cannot stand in for is refused.
    let odd = dependency_exporting(ADDER, &["wasi:cli/environment@0.2.6"]);
    let e = compose("app", main_importing(ADDER), &[(&d, odd.clone())]);
    assert!(e.is_ok(), "inherited, whatever its type");
    let e = compose("app", main_importing(ADDER), &[(&dep(ADDER, None), odd)])
        .err()
        .unwrap();
    assert!(
        format!("{e:#}").contains("imports wasi:cli/environment@0.2.6, which it may use only if it inherits the component's `environment`"),
        "{e:#}"
    );
}

#[test]
fn a_composed_component_is_cached_by_its_bytes() {
    use crate::executor::cache::Origin;
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("main.wasm");
    let dep_file = tmp.path().join("dep.wasm");
    std::fs::write(&main, main_importing(ADDER)).unwrap();
    std::fs::write(&dep_file, dependency_exporting(ADDER, &[])).unwrap();
    let d = Dependency {
        path: dep_file.clone(),
        ..dep(ADDER, None)
    };
    let engine = Engine::default();
    let cache = crate::executor::CompileCache::new(Some(tmp.path().join("cache")));
    let load = || {
        crate::executor::load_with_dependencies(
            &engine,
            &cache,
            "app",
            &main,
            std::slice::from_ref(&d),
        )
    };
    let (_, origin, plugs) = load().unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert_eq!(plugs.len(), 1);
    assert_eq!(load().unwrap().1, Origin::Cache);

    // Another dependency: another composition, compiled.
    std::fs::write(
        &dep_file,
        dependency_exporting("nebula-test:calc/adder@0.1.1", &[]),
    )
    .unwrap();
    assert_eq!(load().unwrap().1, Origin::Compiled);

    // A dependency file that is not WebAssembly: named, with what to do.
    std::fs::write(&dep_file, b"not wasm").unwrap();
    let e = format!("{:#}", load().err().unwrap());
    assert!(
        e.contains("dependency \"nebula-test:calc/adder@0.1.0\": point its `path`"),
        "{e}"
    );
    assert!(e.contains("is not WebAssembly"), "{e}");
}
