//! What a dependency may use of its component's grants.
//!
//! Spin gives a dependency none of its component's capabilities unless the
//! manifest says it inherits them (`dependencies_inherit_configuration =
//! true`, or a dependency's own `inherit_configuration = true | [KEYS]`).
//! Spin enforces that by composing a deny-all adapter in front of the
//! dependency's capability imports (`spin-capabilities`). Nebula serves a
//! composed component's imports from one set of grants, the component's,
//! so a capability import must not reach the host: `wasi:cli/environment`,
//! which runtimes import whatever the code does, gets the adapter's empty
//! answers from a stub ([`super::deny`]); any other capability a
//! dependency imports without inheriting it stops the start, with an error
//! naming the imports and the key that would grant them. What it may
//! import freely (streams, clocks, random, stdout…) is what Spin leaves
//! alone too.

/// Spin's capability sets: the manifest key that grants each, and the
/// interfaces it covers (by name, whatever their version), as
/// `spin-capabilities` lists them.
const SETS: &[(&str, &[&str])] = &[
    ("ai_models", &["fermyon:spin/llm"]),
    (
        "allowed_outbound_hosts",
        &[
            "fermyon:spin/http",
            "fermyon:spin/mysql",
            "fermyon:spin/postgres",
            "fermyon:spin/redis",
            "fermyon:spin/mqtt",
            "spin:mqtt/mqtt",
            "spin:mysql/mysql",
            "spin:postgres/postgres",
            "spin:redis/redis",
            "wasi:http/client",
            "wasi:http/outgoing-handler",
            "wasi:sockets/ip-name-lookup",
            "wasi:sockets/tcp-create-socket",
            "wasi:sockets/tcp",
            "wasi:sockets/udp-create-socket",
            "wasi:sockets/udp",
        ],
    ),
    ("environment", &["wasi:cli/environment"]),
    ("files", &["wasi:filesystem/preopens"]),
    (
        "key_value_stores",
        &[
            "fermyon:spin/key-value",
            "spin:key-value/key-value",
            "wasi:keyvalue/store",
        ],
    ),
    (
        "sqlite_databases",
        &["fermyon:spin/sqlite", "spin:sqlite/sqlite"],
    ),
    (
        "variables",
        &[
            "fermyon:spin/config",
            "fermyon:spin/variables",
            "spin:variables/variables",
            "wasi:config/store",
        ],
    ),
];

/// The keys `inherit_configuration` may list.
pub const KEYS: &[&str] = &[
    "ai_models",
    "allowed_outbound_hosts",
    "environment",
    "files",
    "key_value_stores",
    "sqlite_databases",
    "variables",
];

/// What a dependency inherits of its component's grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Inherit {
    /// `true`: every capability its component was granted.
    All,
    /// The capability sets named (none: Spin's default).
    Only(Vec<String>),
    #[default]
    Nothing,
}

impl Inherit {
    fn allows(&self, key: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Only(keys) => keys.iter().any(|k| k == key),
            Inherit::Nothing => false,
        }
    }
}

/// The manifest key that grants `import`, if it is a capability.
pub fn capability_of(import: &str) -> Option<&'static str> {
    let name = super::names::unversioned(import);
    SETS.iter()
        .find(|(_, interfaces)| interfaces.contains(&name))
        .map(|(key, _)| *key)
}

/// The imports of a dependency that `inherit` does not let it use, each
/// with the key that would grant it.
pub fn denied<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    inherit: &Inherit,
) -> Vec<(&'a str, &'static str)> {
    imports
        .into_iter()
        .filter_map(|i| capability_of(i).map(|key| (i, key)))
        .filter(|(_, key)| !inherit.allows(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_spins_whatever_their_version() {
        assert_eq!(
            capability_of("wasi:cli/environment@0.2.6"),
            Some("environment")
        );
        assert_eq!(
            capability_of("wasi:cli/environment@0.2.0"),
            Some("environment")
        );
        assert_eq!(
            capability_of("spin:key-value/key-value@3.0.0"),
            Some("key_value_stores")
        );
        assert_eq!(
            capability_of("wasi:http/outgoing-handler@0.2.6"),
            Some("allowed_outbound_hosts")
        );
        for free in [
            "wasi:io/streams@0.2.6",
            "wasi:cli/stderr@0.2.6",
            "wasi:clocks/monotonic-clock@0.2.6",
            "wasi:random/random@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "wasi:http/types@0.2.6",
            "nebula-test:calc/adder@0.1.0",
        ] {
            assert_eq!(capability_of(free), None, "{free}");
        }
        for (key, interfaces) in SETS {
            assert!(KEYS.contains(key));
            assert!(!interfaces.is_empty());
        }
    }

    #[test]
    fn only_what_is_not_inherited_is_denied() {
        let imports = [
            "wasi:io/streams@0.2.6",
            "wasi:cli/environment@0.2.6",
            "spin:sqlite/sqlite@3.1.0",
        ];
        assert_eq!(
            denied(imports, &Inherit::Nothing),
            [
                ("wasi:cli/environment@0.2.6", "environment"),
                ("spin:sqlite/sqlite@3.1.0", "sqlite_databases")
            ]
        );
        assert_eq!(
            denied(imports, &Inherit::Only(vec!["environment".into()])),
            [("spin:sqlite/sqlite@3.1.0", "sqlite_databases")]
        );
        assert!(denied(imports, &Inherit::All).is_empty());
    }
}
