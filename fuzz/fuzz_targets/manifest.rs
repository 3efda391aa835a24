//! The manifest parser: any text, never a panic, every error with file:line.
#![no_main]

#[path = "../../host/tests/props/checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        checks::manifest_parse(text);
    }
});
