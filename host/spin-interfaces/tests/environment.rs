//! Reading `SPIN_VARIABLE_*` from the real process environment. A test binary of its own:
//! it changes the environment, which must not race with other tests' threads (SQLite reads
//! `TMPDIR` with libc's getenv, outside Rust's environment lock).

use std::collections::HashMap;

use nebula_spin_interfaces::*;

#[test]
fn spin_variable_environment_overrides_default() {
    std::env::set_var("SPIN_VARIABLE_NEBULA_PROBE", "from the environment");
    std::env::remove_var("SPIN_VARIABLE_NEBULA_UNSET");

    let mut variables = AppVariables::new();
    for name in ["nebula_probe", "nebula_unset"] {
        variables.insert(
            name,
            AppVariable {
                default: Some("default".into()),
                ..Default::default()
            },
        );
    }
    let resources = SpinResources::new(ResourceOptions {
        key_value: HashMap::new(),
        sqlite: HashMap::new(),
        variables,
        environment: None,
        max_kv_store_bytes: None,
    })
    .unwrap();
    assert_eq!(
        resources.resolve_template("{{ nebula_probe }}").unwrap(),
        "from the environment"
    );
    assert_eq!(
        resources.resolve_template("[{{ nebula_unset }}]").unwrap(),
        "[default]"
    );
}
