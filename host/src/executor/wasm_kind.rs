//! Tells what kind of file a `.wasm` is from its 8-byte header, so a file
//! that is neither a component nor a core module gets an error that says
//! what it is and what to do, rather than the parser's first complaint.

use std::path::Path;

const MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a core module (version 1, layer 0).
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
/// Layer 1 marks a component; the version before it is still moving.
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// What a `.wasm` file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    Component,
    /// A core module: made into a component at load (`super::componentize`),
    /// as Spin does.
    CoreModule,
}

/// What `bytes` (at least the first 8 of a file) start like, or an error
/// that says what the file is instead.
pub fn kind(bytes: &[u8], path: &Path) -> anyhow::Result<WasmKind> {
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
        return Ok(WasmKind::CoreModule);
    }
    if bytes[6..8] != COMPONENT_LAYER {
        anyhow::bail!(
            "{path} is WebAssembly of an unknown version or layer ({:02x?}); expected a component",
            &bytes[4..8]
        );
    }
    Ok(WasmKind::Component)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        kind(bytes, Path::new("x.wasm")).unwrap_err().to_string()
    }

    #[test]
    fn each_kind_of_wrong_file_is_named() {
        assert!(err(b"").contains("x.wasm is empty"));
        assert!(err(b"\0as").contains("is not WebAssembly"));
        assert!(err(b"hello world!").contains("is not WebAssembly"));
        assert!(err(b"\0asm\x01\0\x07\0").contains("unknown version or layer"));
        let x = Path::new("x.wasm");
        assert_eq!(kind(b"\0asm\x01\0\0\0", x).unwrap(), WasmKind::CoreModule);
        assert_eq!(kind(b"\0asm\x0d\0\x01\0", x).unwrap(), WasmKind::Component);
    }
}
