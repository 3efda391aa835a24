//! The templates of `nebula new`, embedded from the repository's `templates/`
//! folder so the binary can create a component anywhere.

use std::fmt;

/// The pure world every template is built against, written into the
/// component's folder so it builds outside this repository.
pub const PURE_WIT: &str = include_str!("../../../wit/pure/function.wit");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// What a template makes: its files, and how the manifest builds it.
pub struct Template {
    /// Paths relative to the component's folder, and their text with
    /// `{{name}}` and `{{crate}}` still in it.
    pub files: &'static [(&'static str, &'static str)],
    /// The shell command that builds it, run in the component's folder.
    pub command: &'static str,
    /// The `.wasm` the command leaves, relative to the component's folder.
    pub output: &'static str,
    /// What the component's folder holds that, changed, needs a rebuild.
    pub watch: &'static [&'static str],
}

const RUST: Template = Template {
    files: &[
        ("Cargo.toml", include_str!("../../../templates/rust/Cargo.toml.tmpl")),
        (
            ".cargo/config.toml",
            include_str!("../../../templates/rust/.cargo/config.toml"),
        ),
        ("src/lib.rs", include_str!("../../../templates/rust/src/lib.rs.tmpl")),
        (".gitignore", include_str!("../../../templates/rust/gitignore.tmpl")),
    ],
    // Copied out of cargo's target folder so the manifest's `source` holds
    // wherever CARGO_TARGET_DIR puts it.
    command: "cargo build --release --target wasm32-wasip2 && cp \"${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm\" {{name}}.wasm",
    output: "{{name}}.wasm",
    watch: &["src", "wit", "Cargo.toml", ".cargo"],
};

// The toolchains are `nebula build`'s: a command whose program is
// `componentize-py` gets a virtual environment at .nebula/toolchains/python,
// one whose program is `jco` gets node_modules from a package.json.
const PYTHON: Template = Template {
    files: &[
        (
            "app.py",
            include_str!("../../../templates/python/app.py.tmpl"),
        ),
        (
            ".gitignore",
            include_str!("../../../templates/python/gitignore.tmpl"),
        ),
    ],
    command: "componentize-py -d wit -w pure componentize app -o {{name}}.wasm",
    output: "{{name}}.wasm",
    watch: &["app.py", "wit"],
};

const JS: Template = Template {
    files: &[
        ("app.js", include_str!("../../../templates/js/app.js.tmpl")),
        (
            ".gitignore",
            include_str!("../../../templates/js/gitignore.tmpl"),
        ),
    ],
    command: "jco componentize app.js --bundle -w wit -n pure -d http fetch-event -o {{name}}.wasm",
    output: "{{name}}.wasm",
    watch: &["app.js", "wit"],
};

impl Lang {
    pub fn template(self) -> &'static Template {
        match self {
            Lang::Rust => &RUST,
            Lang::Python => &PYTHON,
            Lang::Js => &JS,
        }
    }
}

/// Fills in a template's placeholders.
pub fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
}
