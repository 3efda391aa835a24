//! The manifest's TOML shapes exactly as written. Unknown keys are errors so
//! that a typo is reported, not silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub app: Option<RawApp>,
    pub r#static: Option<RawStatic>,
    pub database: Option<RawDatabase>,
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub components: BTreeMap<String, RawComponent>,
    #[serde(default)]
    pub reads: BTreeMap<String, RawRead>,
    #[serde(default)]
    pub writes: BTreeMap<String, RawWrite>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    pub dir: PathBuf,
    pub prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub path: Option<PathBuf>,
    pub schema: Option<PathBuf>,
    pub seed: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<usize>,
    pub max_instances: Option<u32>,
    pub max_memory_mb: Option<usize>,
    pub timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub source: PathBuf,
    pub build: Option<RawBuild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    pub command: String,
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub watch: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRead {
    pub sql: String,
    #[serde(default)]
    pub bind: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWrite {
    pub sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Spanned<String>,
    pub methods: Option<Vec<Spanned<String>>>,
    pub component: Spanned<String>,
    #[serde(default)]
    pub reads: Vec<Spanned<String>>,
    #[serde(default)]
    pub writes: Vec<Spanned<String>>,
}
