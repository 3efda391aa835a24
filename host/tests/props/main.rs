//! Property tests: the fuzz targets' properties (checks.rs, shared with
//! fuzz/), run quickly on generated inputs in every `cargo test`, since CI
//! cannot run cargo-fuzz for long. Failures proptest finds are kept in
//! proptest-regressions/ beside this file and replayed first.

mod checks;

use proptest::collection::vec;
use proptest::prelude::*;

/// Text from the characters that matter to each parser, plus anything.
fn routeish() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(/|:|\\*|\\.|%|[a-z0-9]|-|_|\\?|#|é|%[0-9A-Fa-f]{2}|%ff|//){0,12}",
        1 => any::<String>(),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("HEAD".to_string()),
        Just("POST".to_string()),
        Just("DELETE".to_string()),
        "[A-Z]{1,7}",
    ]
}

fn route_defs() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    vec((routeish(), vec(method(), 1..3)), 0..6)
}

/// Manifest-shaped text: real keys, tables and values in random order and
/// form, so generated input gets past the TOML parser into the checks.
fn manifestish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[app]".to_string()),
        Just("name = \"a\"".to_string()),
        Just("[static]".to_string()),
        Just("dir = \"static\"".to_string()),
        "prefix = \"[/a-z]{0,6}\"",
        Just("[database]".to_string()),
        Just("path = \"x.db\"".to_string()),
        Just("[limits]".to_string()),
        "(max_body_bytes|max_instances|max_memory_mb|timeout_ms) = -?[0-9]{1,21}",
        "\\[components\\.[a-z]{1,3}\\]",
        "source = \"[a-z./]{0,8}\"",
        "build = \\{ command = \"true\"(, workdir = \"[a-z.]{0,3}\")? \\}",
        "\\[reads\\.[a-z]{1,3}\\]",
        "sql = \"SELECT( :[a-z]{1,3})?\"",
        "bind = \\{ [a-z]{1,3} = \"(param|query|form|header|cookie)\\.[a-z]{0,3}\" \\}",
        "\\[writes\\.[a-z]{1,3}\\]",
        Just("[[routes]]".to_string()),
        routeish().prop_map(|p| format!("path = {p:?}")),
        "component = \"[a-z]{1,3}\"",
        "methods = \\[(\"[A-Za-z]{0,7}\", ){0,3}\\]",
        "(reads|writes) = \\[(\"[a-z]{1,3}\", ){0,3}\\]",
        any::<String>(),
    ];
    vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-zA-Z0-9-]{1,12}".prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..12),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[ -~]{0,24}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..24),
    ]
}

fn uri() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "/(([a-z0-9]|%[0-9A-Fa-f]{2}|%ff|%c3%a9|/|\\.|\\+)){0,16}(\\?(([a-z]|=|&|%[0-9A-Fa-f]{2}|\\+|%)){0,16})?"
            .prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..32),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn manifest_parser_never_panics_and_errors_have_file_and_line(text in manifestish()) {
        checks::manifest_parse(&text);
    }

    #[test]
    fn manifest_parser_survives_any_text(text in any::<String>()) {
        checks::manifest_parse(&text);
    }

    #[test]
    fn router_matches_consistently(defs in route_defs(), m in method(), path in routeish()) {
        checks::router_matches_consistently(&defs, &m, &path);
    }

    #[test]
    fn router_finds_a_filled_in_pattern(
        pattern in routeish(),
        values in vec(any::<String>(), 0..6),
    ) {
        checks::router_finds_a_filled_in_pattern(&pattern, &values);
    }

    #[test]
    fn request_conversion_is_faithful(
        m in method(),
        uri in uri(),
        headers in vec((header_name(), header_value()), 0..8),
        body in vec(any::<u8>(), 0..64),
        params in vec((any::<String>(), any::<String>()), 0..3),
        seed in any::<u64>(),
        now_ms in any::<u64>(),
    ) {
        checks::request_converts_faithfully(&checks::RawRequest {
            method: m.as_bytes(),
            uri: &uri,
            headers: &headers,
            body: &body,
            params,
            seed,
            now_ms,
        });
    }

    #[test]
    fn response_conversion_keeps_or_refuses(
        status in prop_oneof![100u16..600, any::<u16>()],
        headers in vec((
            prop_oneof![3 => "[a-zA-Z-]{1,10}", 1 => any::<String>()],
            prop_oneof![
                3 => "[ -~]{0,20}",
                1 => Just("/memes/{{last_insert_rowid}}".to_string()),
                1 => any::<String>(),
            ],
        ), 0..6),
        body in vec(any::<u8>(), 0..16),
        rowid in any::<Option<i64>>(),
    ) {
        checks::response_converts_or_is_refused(status, headers, body, rowid);
    }
}
