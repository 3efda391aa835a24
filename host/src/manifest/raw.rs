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
    pub session: Option<RawSession>,
    /// `[cache]`: the memoised responses' memory.
    pub cache: Option<RawCacheSection>,
    /// Header name → value for every response (`""` removes a default).
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
}

/// `[session]`: a signed visitor cookie set by the host.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie: Option<Spanned<String>>,
    pub max_age_days: Option<Spanned<u64>>,
    pub secure: Option<bool>,
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
    pub url: Option<Spanned<String>>,
    pub migrations: Option<PathBuf>,
    pub schema: Option<PathBuf>,
    pub seed: Option<PathBuf>,
}

/// `[limits]`: the app-wide limits and the defaults for every component.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<Spanned<u64>>,
    pub max_instances: Option<Spanned<u64>>,
    pub max_memory_mb: Option<Spanned<u64>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub max_response_bytes: Option<Spanned<u64>>,
    pub max_header_bytes: Option<Spanned<u64>>,
    pub max_headers: Option<Spanned<u64>>,
    pub queue_size: Option<Spanned<u64>>,
    pub queue_timeout_ms: Option<Spanned<u64>>,
    pub max_connections: Option<Spanned<u64>>,
    pub header_read_timeout_ms: Option<Spanned<u64>>,
    pub body_read_timeout_ms: Option<Spanned<u64>>,
    pub shutdown_grace_ms: Option<Spanned<u64>>,
    pub read_max_rows: Option<Spanned<u64>>,
    pub read_max_bytes: Option<Spanned<u64>>,
    pub read_timeout_ms: Option<Spanned<u64>>,
    pub max_kv_store_bytes: Option<Spanned<u64>>,
    pub write_timeout_ms: Option<Spanned<u64>>,
    pub max_connections_per_ip: Option<Spanned<u64>>,
}

/// `[components.NAME.limits]`: what one component may use per request,
/// overriding `[limits]`.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawComponentLimits {
    pub timeout_ms: Option<Spanned<u64>>,
    pub max_memory_mb: Option<Spanned<u64>>,
    pub max_response_bytes: Option<Spanned<u64>>,
    pub max_instance_reuse: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub source: PathBuf,
    pub build: Option<RawBuild>,
    pub limits: Option<RawComponentLimits>,
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
    pub max_rows: Option<Spanned<u64>>,
    pub max_bytes: Option<Spanned<u64>>,
    pub timeout_ms: Option<Spanned<u64>>,
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
    /// `"N/UNIT"` per client address, e.g. `"10/min"`.
    pub rate_limit: Option<Spanned<String>>,
    /// `"refuse"` (default) or `"allow"` cross-site state-changing requests.
    pub cross_site: Option<Spanned<String>>,
    /// `"errors"` or `"all"`: which calls `nebula replay` can replay.
    pub record: Option<Spanned<String>>,
    /// `{ max_age_s = N, vary = [...] }`: memoise this GET route's responses.
    pub cache: Option<Spanned<RawRouteCache>>,
}

/// A route's `cache = { max_age_s = N, vary = ["header", …] }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    pub max_age_s: Spanned<u64>,
    pub client_max_age_s: Option<Spanned<u64>>,
    #[serde(default)]
    pub vary: Vec<Spanned<String>>,
}

/// `[cache]`: how much memory memoised responses may take.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCacheSection {
    pub max_bytes: Option<Spanned<u64>>,
}
