//! spin.toml's reader. Each `tests/manifests/spin-*.toml` is a broken
//! spin.toml whose expected error is in the `.err` file beside it (see
//! [`crate::manifest::golden`]).

use std::path::Path;

use super::*;
use crate::manifest::golden::{check_broken_manifests, Reader};

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
version = "1.0.0"
authors = ["me"]
[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }
[[trigger.http]]
route = "/hello/..."
component = "hello"
[[trigger.http]]
route = { private = true }
component = "hello"
[[trigger.http]]
route = "/inline"
component = { source = "inline.wasm" }
[[trigger.redis]]
address = "redis://127.0.0.1:6379"
channel = "x"
component = "hello"
[[trigger.cron]]
cron_expression = "1/2 * * * * *"
component = "hello"
[component.hello]
source = "target/hello.wasm"
files = [{ source = "assets", destination = "/assets" }, "static/**/*"]
exclude_files = ["static/drafts/*"]
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
ai_models = ["llama2-chat"]
[component.hello.variables]
greeting = "{{ greeting }}"
[component.hello.build]
command = "cargo build --release"
watch = ["src/**/*.rs"]
"#;

#[test]
fn parses_an_http_app_and_warns_about_the_rest() {
    let m = SpinManifest::parse(Path::new("app/spin.toml"), APP).unwrap();
    assert_eq!(m.name, "demo");
    assert_eq!(m.triggers.len(), 3);
    assert_eq!(m.triggers[0].route.as_deref(), Some("/hello/..."));
    assert_eq!(m.triggers[1].route, None);
    assert!(m.components.contains_key("inline-component-2"));
    let c = &m.components["hello"];
    assert_eq!(c.source, Path::new("app/target/hello.wasm"));
    assert_eq!(
        c.files,
        vec![
            FileMount::Placement {
                source: "assets".into(),
                destination: "/assets".into()
            },
            FileMount::Pattern("static/**/*".into()),
        ]
    );
    assert_eq!(c.exclude_files, ["static/drafts/*"]);
    assert_eq!(c.variables["greeting"], "{{ greeting }}");
    assert!(m.variables["api_key"].required);
    assert_eq!(
        m.redis_triggers,
        [RedisTrigger {
            address: "redis://127.0.0.1:6379".into(),
            channel: "x".into(),
            component: "hello".into()
        }]
    );
    let w = m.warnings.join("\n");
    assert!(w.contains("[[trigger.cron]] is not supported"), "{w}");
    assert!(!w.contains("trigger.redis"), "{w}");
    assert!(
        w.contains("component.hello.ai_models is not supported"),
        "{w}"
    );
    assert!(
        !w.contains("exclude_files"),
        "exclude_files is applied: {w}"
    );
}

#[test]
fn files_that_would_leave_the_app_folder_are_errors_naming_the_key() {
    for (files, said) in [
        (r#"files = ["../secrets/*"]"#, "'..' is not allowed"),
        (r#"files = ["/etc/passwd"]"#, "must be relative"),
        (
            r#"files = [{ source = "assets", destination = "static" }]"#,
            "must be an absolute guest path",
        ),
        (
            r#"files = [{ source = "assets", destination = "/a/../.." }]"#,
            "must not contain '..'",
        ),
        (r#"exclude_files = ["a/[b"]"#, "not a valid glob"),
    ] {
        let bad = APP.replace(
            "files = [{ source = \"assets\", destination = \"/assets\" }, \"static/**/*\"]\nexclude_files = [\"static/drafts/*\"]",
            files,
        );
        assert_ne!(bad, APP);
        let e = format!(
            "{:#}",
            SpinManifest::parse(Path::new("spin.toml"), &bad).unwrap_err()
        );
        assert!(
            e.starts_with("spin.toml:") && e.contains(": component.hello."),
            "{e}"
        );
        assert!(e.contains(said), "{files}: {e}");
    }
}

#[test]
fn errors_name_the_file_and_key() {
    let bad = APP.replace(
        "component = \"hello\"\n[[trigger.http]]\nroute = { private",
        "component = \"helo\"\n[[trigger.http]]\nroute = { private",
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spin.toml:12: trigger.http[0].component: unknown component \"helo\""),
        "{e}"
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &APP.replace("= 2", "= 1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifest version 2"), "{e}");
}

#[test]
fn nebulas_limits_are_read_from_the_tool_tables_spin_ignores() {
    let with = APP
        .replace(
            "[variables]",
            "[application.tool.nebula.limits]\nmax_instances = 2\nqueue_size = 1\nmax_body_bytes = 100\n[application.tool.other]\nanything = true\n[variables]",
        )
        .replace(
            "[component.hello.variables]",
            "[component.hello.tool.nebula.limits]\ntimeout_ms = 250\nmax_response_bytes = 1000\nmax_instance_reuse = 1\n[component.hello.variables]",
        );
    let m = SpinManifest::parse(Path::new("spin.toml"), &with).unwrap();
    assert_eq!(m.limits.max_instances, Some(2));
    assert_eq!(m.limits.queue_size, Some(1));
    assert_eq!(m.limits.max_body_bytes, 100);
    let c = &m.components["hello"].limits;
    assert_eq!(c.timeout_ms, Some(250));
    assert_eq!(c.max_response_bytes, Some(1000));
    assert_eq!(c.max_memory_mb, None);
    assert_eq!(c.max_instance_reuse, Some(1));
    let w = m.warnings.join("\n");
    assert!(
        !w.contains("tool"),
        "tool tables are Spin's, not unknown: {w}"
    );
    // Without them, the defaults.
    let plain = SpinManifest::parse(Path::new("spin.toml"), APP).unwrap();
    assert_eq!(plain.limits.max_instances, None);
    assert_eq!(plain.components["hello"].limits.timeout_ms, None);
}

#[test]
fn max_kv_store_bytes_is_read_and_checked() {
    let plain = SpinManifest::parse(Path::new("spin.toml"), APP).unwrap();
    assert_eq!(
        plain.limits.max_kv_store_bytes,
        nebula_spin_interfaces::DEFAULT_MAX_KV_STORE_BYTES
    );
    let set = APP.replace(
        "[variables]",
        "[application.tool.nebula.limits]\nmax_kv_store_bytes = 4096\n[variables]",
    );
    let m = SpinManifest::parse(Path::new("spin.toml"), &set).unwrap();
    assert_eq!(m.limits.max_kv_store_bytes, 4096);
    let bad = APP.replace(
        "[variables]",
        "[application.tool.nebula.limits]\nmax_kv_store_bytes = 0\n[variables]",
    );
    let line = bad
        .lines()
        .position(|l| l == "max_kv_store_bytes = 0")
        .unwrap()
        + 1;
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("spin.toml:{line}"))
            && e.contains("application.tool.nebula.limits.max_kv_store_bytes")
            && e.contains("at least 1"),
        "{e}"
    );
}

#[test]
fn a_bad_limit_in_a_tool_table_names_its_key_and_line() {
    let bad = APP.replace(
        "[component.hello.variables]",
        "[component.hello.tool.nebula.limits]\ntimeout_ms = 0\n[component.hello.variables]",
    );
    let line = bad.lines().position(|l| l == "timeout_ms = 0").unwrap() + 1;
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("spin.toml:{line}"))
            && e.contains("component.hello.tool.nebula.limits.timeout_ms"),
        "{e}"
    );
    let bad = APP.replace(
        "[component.hello.variables]",
        "[component.hello.tool.nebula.limits]\nmax_instance_reuse = 0\n[component.hello.variables]",
    );
    let line = bad
        .lines()
        .position(|l| l == "max_instance_reuse = 0")
        .unwrap()
        + 1;
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("spin.toml:{line}"))
            && e.contains("component.hello.tool.nebula.limits.max_instance_reuse")
            && e.contains("between 1 and 1000000"),
        "{e}"
    );
    let typo = APP.replace(
        "[variables]",
        "[application.tool.nebula]\nlimit = {}\n[variables]",
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &typo)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("limit"),
        "an unknown key in Nebula's table is an error: {e}"
    );
}

#[test]
fn every_broken_spin_manifest_gives_its_expected_error() {
    let cases = check_broken_manifests(Reader::SpinToml, |file, text| {
        SpinManifest::parse(file, text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        cases.len() >= 10,
        "only {} spin.toml cases found",
        cases.len()
    );
    for name in cases {
        assert!(
            name.starts_with("spin-"),
            "{name} is read as spin.toml; name it spin-*.toml"
        );
    }
}

#[test]
fn a_key_spin_does_not_know_is_an_error_on_its_line() {
    let bad = APP.replace(
        "[component.hello.variables]",
        "colour = \"blue\"\n[component.hello.variables]",
    );
    let line = bad.lines().position(|l| l == "colour = \"blue\"").unwrap() + 1;
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad).unwrap_err();
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.key, "component.hello.colour", "{e}");
    assert!(
        e.message.starts_with("unknown field `colour`") && e.message.contains("remove it"),
        "{e}"
    );
}

#[test]
fn an_inline_component_has_the_same_checks_and_settings() {
    let with = APP.replace(
        "component = { source = \"inline.wasm\" }",
        "component = { source = \"inline.wasm\", ai_models = [\"x\"], tool.nebula = { cross_site = \"allow\", limits = { timeout_ms = 5 } } }",
    );
    let m = SpinManifest::parse(Path::new("spin.toml"), &with).unwrap();
    let c = &m.components["inline-component-2"];
    assert_eq!(c.cross_site, CrossSite::Allow);
    assert_eq!(c.limits.timeout_ms, Some(5));
    assert!(
        m.warnings.iter().any(|w| w
            == "trigger.http[2].component.ai_models is not supported by Nebula and is ignored"),
        "{:?}",
        m.warnings
    );
    let bad = APP.replace(
        "component = { source = \"inline.wasm\" }",
        "component = { source = \"inline.wasm\", files = [\"../up\"] }",
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &bad).unwrap_err();
    assert_eq!(e.key, "trigger.http[2].component.files", "{e}");
    assert_eq!(e.line, Some(18), "{e}");
}

#[test]
fn spin_keys_nebula_ignores_are_warnings() {
    let with = APP
        .replace(
            "[variables]",
            "[application.trigger.cron]\nx = 1\n[variables]",
        )
        .replace(
            "route = \"/inline\"",
            "route = \"/inline\"\nstatic_response = { status_code = 200 }\nexecutor = { type = \"wagi\" }",
        );
    let m = SpinManifest::parse(Path::new("spin.toml"), &with).unwrap();
    let w = m.warnings.join("\n");
    for said in [
        "application.trigger.cron is not used by Nebula",
        "trigger.http[2].static_response is not supported",
        "trigger.http[2].executor: the \"wagi\" executor is not supported",
        "[[trigger.cron]] is not supported by Nebula (HTTP and Redis triggers only); its 1 trigger(s)",
    ] {
        assert!(w.contains(said), "{said}: {w}");
    }
}

#[test]
fn a_spin_manifest_is_told_from_an_app_toml() {
    let is = |f: &str, t: &str| SpinManifest::is_spin_manifest(Path::new(f), t);
    assert!(is("spin.toml", ""));
    assert!(is("x.toml", "spin_manifest_version = 2"));
    assert!(is("x.toml", "[application]\nname = \"a\""));
    assert!(is("x.toml", "[component.a]\nsource = \"a.wasm\""));
    assert!(is("x.toml", "  [[trigger.http]]\nroute = \"/\""));
    assert!(!is(
        "app.toml",
        "[app]\nname = \"a\"\n[components.a]\nsource = \"a.wasm\"\n[[routes]]\npath = \"/\""
    ));
}

#[test]
fn spin_ids_follow_spins_rules() {
    for ok in ["hello", "my-component", "HTTP-server2", "a1"] {
        assert!(check_id(ok, '-', false).is_ok(), "{ok}");
    }
    for bad in ["", "my_component", "-a", "a--b", "2a", "Hello", "a.b"] {
        assert!(check_id(bad, '-', false).is_err(), "{bad}");
    }
    assert!(check_id("api_key", '_', true).is_ok());
    assert!(check_id("API_KEY", '_', true).is_err());
    assert!(check_id("API_KEY", '_', false).is_ok());
}

#[test]
fn every_spin_manifest_the_repository_ships_parses() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<_> = [
        "examples/academemes-spin/spin.toml",
        "guests/http-hello/spin.toml",
        "guests/spin-compat/sdk-v5/spin.toml",
        "guests/spin-compat/sdk-v7/spin.toml",
        "guests/spin-compat/sdk-deps/spin.toml",
        "host/tests/apps/spin-files/spin.toml",
    ]
    .iter()
    .map(|f| repo.join(f))
    .collect();
    for entry in std::fs::read_dir(repo.join("host/tests/apps")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.starts_with("spin-") && name.ends_with(".toml") {
            files.push(path);
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            SpinManifest::is_spin_manifest(&file, &text),
            "{}",
            file.display()
        );
        let m = SpinManifest::parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            m.warnings.is_empty(),
            "{}: {:?}",
            file.display(),
            m.warnings
        );
    }
}

/// A one-component app with `deps` as `[component.hello.dependencies]` and
/// `extra` lines in `[component.hello]`.
fn with_dependencies(extra: &str, deps: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "demo"
[[trigger.http]]
route = "/hello/..."
component = "hello"
[component.hello]
source = "target/hello.wasm"
{extra}
[component.hello.dependencies]
{deps}
"#
    )
}

#[test]
fn dependencies_are_read_with_their_paths_exports_and_inheritance() {
    use crate::executor::compose::Inherit;
    let text = with_dependencies(
        "",
        r#""example:calc/adder@1.0.0" = { path = "deps/adder.wasm" }
"example:calc/mul" = { path = "m.wasm", export = "other:pkg/mul" }
"example:strings" = { path = "strings.wasm", inherit_configuration = ["environment", "files"] }
"my-import" = { path = "plain.wasm", inherit_configuration = true }"#,
    );
    let m = SpinManifest::parse(Path::new("app/spin.toml"), &text).unwrap();
    assert!(
        m.warnings.is_empty(),
        "dependencies are not ignored: {:?}",
        m.warnings
    );
    let deps = &m.components["hello"].dependencies;
    let by_key = |k: &str| deps.iter().find(|d| d.name.to_string() == k).unwrap();
    assert_eq!(deps.len(), 4);
    let adder = by_key("example:calc/adder@1.0.0");
    assert_eq!(adder.path, Path::new("app/deps/adder.wasm"));
    assert_eq!(adder.export, None);
    assert_eq!(adder.inherit, Inherit::Nothing);
    assert_eq!(
        by_key("example:calc/mul").export.as_deref(),
        Some("other:pkg/mul")
    );
    assert!(by_key("example:strings").name.is_whole_package());
    assert_eq!(
        by_key("example:strings").inherit,
        Inherit::Only(vec!["environment".into(), "files".into()])
    );
    assert_eq!(by_key("my-import").inherit, Inherit::All);

    // The component-wide switch applies to every dependency.
    let text = with_dependencies(
        "dependencies_inherit_configuration = true",
        r#""example:calc/adder" = { path = "adder.wasm" }"#,
    );
    let m = SpinManifest::parse(Path::new("spin.toml"), &text).unwrap();
    assert_eq!(m.components["hello"].dependencies[0].inherit, Inherit::All);

    // Spin ignores a capability it does not know: Nebula says so.
    let text = with_dependencies(
        "",
        r#""example:calc/adder" = { path = "adder.wasm", inherit_configuration = ["gpus"] }"#,
    );
    let m = SpinManifest::parse(Path::new("spin.toml"), &text).unwrap();
    assert!(
        m.warnings[0].contains("\"gpus\" is not a capability Spin knows"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn each_dependency_mistake_is_an_error_on_its_line_naming_the_key() {
    for (deps, says) in [
        (
            r#""example:x/y" = "1.0""#,
            "is a version of a package in a registry, which Nebula does not download",
        ),
        (
            r#""example:x/y" = { version = "1.0", registry = "r.example" }"#,
            "registry sources ({ version = ..., registry = ..., package = ... }) are not supported",
        ),
        (
            r#""example:x/z" = { url = "https://example.invalid/z.wasm", digest = "sha256:0" }"#,
            "HTTP sources ({ url = ... }) are not supported",
        ),
        (
            r#""example:x/z" = { component = "other" }"#,
            "another component of the app as a dependency",
        ),
        (r#""example:x/z" = { export = "a:b/c" }"#, "missing `path`"),
        (
            r#""example:x/z" = { path = "" }"#,
            "`path`: expected the path",
        ),
        (
            r#""example:x/z" = { path = "z.wasm", colour = 1 }"#,
            "unknown key `colour`",
        ),
        (
            r#""example:x" = { path = "z.wasm", export = "a:b/c" }"#,
            "`export` cannot rename the imports of a whole package",
        ),
        (
            r#""example:x/z" = { path = "z.wasm", inherit_configuration = "yes" }"#,
            "`inherit_configuration`: expected true, false or a list",
        ),
        (
            r#""example:x/z@one" = { path = "z.wasm" }"#,
            "is not a semantic version",
        ),
    ] {
        let text = with_dependencies("", deps);
        let line = text.lines().position(|l| l == deps).unwrap() + 1;
        let e = SpinManifest::parse(Path::new("spin.toml"), &text).unwrap_err();
        assert_eq!(e.line, Some(line), "{deps}: {e}");
        assert!(
            e.key.starts_with("component.hello.dependencies.\"example:"),
            "{deps}: {e}"
        );
        assert!(e.message.contains(says), "{deps}: {e}");
    }

    // Two keys that may name the same import, as Spin refuses them.
    let text = with_dependencies(
        "",
        "\"example:calc\" = { path = \"a.wasm\" }\n\"example:calc/adder\" = { path = \"b.wasm\" }",
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &text).unwrap_err();
    assert!(
        e.message
            .contains("conflicts with the dependency \"example:calc\""),
        "{e}"
    );
    // …unless their versions keep them apart.
    let text = with_dependencies(
        "",
        "\"example:calc@1.0.0\" = { path = \"a.wasm\" }\n\"example:calc/adder@2.0.0\" = { path = \"b.wasm\" }",
    );
    SpinManifest::parse(Path::new("spin.toml"), &text).unwrap();

    let text = with_dependencies(
        "dependencies_inherit_configuration = \"all\"",
        r#""example:calc/adder" = { path = "adder.wasm" }"#,
    );
    let e = SpinManifest::parse(Path::new("spin.toml"), &text).unwrap_err();
    assert_eq!(
        e.key, "component.hello.dependencies_inherit_configuration",
        "{e}"
    );
    assert!(e.message.contains("expected true or false"), "{e}");
}

#[test]
fn redis_triggers_take_the_application_address_and_need_a_channel() {
    let app = |triggers: &str| {
        SpinManifest::parse(
            Path::new("spin.toml"),
            &format!(
                "spin_manifest_version = 2\n[application]\nname = \"r\"\n[application.trigger.redis]\naddress = \"redis://127.0.0.1:6379\"\n{triggers}\n[component.h]\nsource = \"h.wasm\"\n"
            ),
        )
    };
    let m = app("[[trigger.redis]]\nchannel = \"a\"\ncomponent = \"h\"\n[[trigger.redis]]\naddress = \"rediss://db:6380\"\nchannel = \"b\"\ncomponent = \"h\"").unwrap();
    let addrs: Vec<&str> = m
        .redis_triggers
        .iter()
        .map(|t| t.address.as_str())
        .collect();
    assert_eq!(addrs, ["redis://127.0.0.1:6379", "rediss://db:6380"]);
    assert!(
        m.triggers.is_empty(),
        "an app of Redis triggers alone is valid"
    );
    let e = app("[[trigger.redis]]\ncomponent = \"h\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("trigger.redis[0].channel: missing"), "{e}");
    let e = app("[[trigger.redis]]\naddress = \"http://x\"\nchannel = \"c\"\ncomponent = \"h\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a redis:// or rediss:// URL"), "{e}");
    let e = app("[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"nope\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown component \"nope\""), "{e}");
}
