//! Tells what kind of file a `.wasm` is from its 8-byte header, so a file
//! that is not a component gets an error that says what it is and what to
//! do, rather than the parser's first complaint.

use std::path::Path;

const MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a core module (version 1, layer 0).
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
/// Layer 1 marks a component; the version before it is still moving.
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// `Ok` if `bytes` start like a component; otherwise what the file is.
pub fn expect_component(bytes: &[u8], path: &Path) -> anyhow::Result<()> {
    let path = path.display();
    if bytes.is_empty() {
        anyhow::bail!("{path} is empty, not a WebAssembly component; build it again");
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        anyhow::bail!(
            "{path} is not WebAssembly (it does not start with \"\\0asm\"); point `source` at the component's .wasm file"
        );
    }
    if bytes[4..8] == CORE_MODULE {
        anyhow::bail!(
            "{path} is a core WebAssembly module, not a component; build for the wasm32-wasip2 target, or wrap it with `wasm-tools component new`"
        );
    }
    if bytes[6..8] != COMPONENT_LAYER {
        anyhow::bail!(
            "{path} is WebAssembly of an unknown version or layer ({:02x?}); expected a component",
            &bytes[4..8]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        expect_component(bytes, Path::new("x.wasm"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_kind_of_wrong_file_is_named() {
        assert!(err(b"").contains("x.wasm is empty"));
        assert!(err(b"\0as").contains("is not WebAssembly"));
        assert!(err(b"hello world!").contains("is not WebAssembly"));
        assert!(err(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(err(b"\0asm\x01\0\x07\0").contains("unknown version or layer"));
        assert!(expect_component(b"\0asm\x0d\0\x01\0", Path::new("x.wasm")).is_ok());
    }
}
