//! `[limits]` and `[components.NAME.limits]`: what one request, one
//! connection and the whole host may use. Every value is checked here with
//! the line it is on, so a zero deadline or a memory cap wasm cannot address
//! stops the start with a message rather than misbehaving under load.

use std::path::Path;

use toml::Spanned;

use super::error::ManifestError;
use super::raw::{RawComponentLimits, RawLimits};

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;
/// hyper's read buffer, which bounds the request line and headers together.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// hyper refuses a read buffer smaller than this.
pub const MIN_HEADER_BYTES: u64 = 8192;
pub const DEFAULT_MAX_HEADERS: usize = 100;
pub const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
pub const DEFAULT_MAX_KV_STORE_BYTES: u64 = nebula_spin_interfaces::DEFAULT_MAX_KV_STORE_BYTES;
/// What one read may return and how long its SQL may run: a page's reads
/// are meant to be a page's worth, and a query that scans without end must
/// not hold a reader connection and a blocking thread.
pub const DEFAULT_READ_MAX_ROWS: u64 = 10_000;
pub const DEFAULT_READ_MAX_BYTES: u64 = 4 << 20;
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 1_000;
/// A wasm32 linear memory cannot be larger than 4 GiB.
const MAX_MEMORY_MB: u64 = 4096;

/// App-wide limits; the per-request ones are the defaults for components
/// that do not set their own.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request bodies over this get 413.
    pub max_body_bytes: usize,
    /// Instance slots: calls that may run at once; `--max-instances` overrides.
    pub max_instances: Option<u32>,
    /// Memory cap per instance; `--max-memory-mb` overrides.
    pub max_memory_mb: Option<usize>,
    /// Per-request deadline; `--timeout-ms` overrides.
    pub timeout_ms: Option<u64>,
    /// A component's response body over this is replaced by a 500.
    pub max_response_bytes: usize,
    /// Request line and headers together; more gets 431.
    pub max_header_bytes: usize,
    /// Header fields per request; more gets 431.
    pub max_headers: usize,
    /// Requests that may wait for a busy slot (default: `max_instances`);
    /// past it, 503 with `Retry-After`.
    pub queue_size: Option<usize>,
    /// How long a request waits for a slot before it gets 503.
    pub queue_timeout_ms: u64,
    /// Open connections (default: from the open-file limit); further ones
    /// wait in the listen backlog.
    pub max_connections: Option<usize>,
    /// A client must send its request line and headers within this.
    pub header_read_timeout_ms: u64,
    /// A client must send its whole body within this, or gets 408.
    pub body_read_timeout_ms: u64,
    /// On SIGTERM/Ctrl-C, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// A response write that makes no progress for this long (the client
    /// does not read) closes the connection.
    pub write_timeout_ms: u64,
    /// Open connections from one client address; past it, new ones from
    /// that address are closed at once.
    pub max_connections_per_ip: usize,
    /// Spin apps: bytes (keys and values) one key-value store may hold.
    pub max_kv_store_bytes: u64,
    /// The defaults of every read's `max_rows`, `max_bytes`, `timeout_ms`.
    pub read: ReadLimits,
}

/// What one read may return and how long it may run; `[reads.NAME]`
/// overrides `[limits] read_max_rows`, `read_max_bytes`, `read_timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// More rows than this: the read fails (500).
    pub max_rows: u64,
    /// More bytes than this (text and blob lengths, 8 per number): 500.
    pub max_bytes: u64,
    /// The read's SQL is interrupted after this long: 500.
    pub timeout_ms: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_rows: DEFAULT_READ_MAX_ROWS,
            max_bytes: DEFAULT_READ_MAX_BYTES,
            timeout_ms: DEFAULT_READ_TIMEOUT_MS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_instances: None,
            max_memory_mb: None,
            timeout_ms: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            queue_size: None,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
            max_connections: None,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: DEFAULT_BODY_READ_TIMEOUT_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            write_timeout_ms: DEFAULT_WRITE_TIMEOUT_MS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_kv_store_bytes: DEFAULT_MAX_KV_STORE_BYTES,
            read: ReadLimits::default(),
        }
    }
}

/// One component's overrides of the app-wide limits.
#[derive(Debug, Clone, Default)]
pub struct ComponentLimits {
    pub timeout_ms: Option<u64>,
    pub max_memory_mb: Option<usize>,
    pub max_response_bytes: Option<usize>,
    /// Requests one instance of a Spin WASI 0.3 component serves before it
    /// is dropped (`--max-instance-reuse` otherwise); 1 gives each request a
    /// fresh instance. Pure and WASI 0.2 components always get one.
    pub max_instance_reuse: Option<usize>,
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    table: String,
}

impl Checker<'_> {
    /// The value, if given, must lie in `min..=max`.
    fn range(
        &self,
        v: &Option<Spanned<u64>>,
        name: &str,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Result<Option<u64>, ManifestError> {
        let Some(v) = v else { return Ok(None) };
        let n = *v.get_ref();
        if n < min || n > max {
            let expected = if max == u64::MAX {
                format!("at least {min}{unit}")
            } else {
                format!("between {min} and {max}{unit}")
            };
            return Err(ManifestError::at_span(
                self.file,
                self.text,
                Some(v.span()),
                &format!("{}.{name}", self.table),
                format!("expected {expected}, found {n}"),
            ));
        }
        Ok(Some(n))
    }

    // The keys `[limits]` and a component's own limits share, checked alike.

    fn timeout_ms(&self, v: &Option<Spanned<u64>>) -> Result<Option<u64>, ManifestError> {
        self.range(v, "timeout_ms", 1, u64::MAX, MS)
    }

    fn max_memory_mb(&self, v: &Option<Spanned<u64>>) -> Result<Option<usize>, ManifestError> {
        Ok(self
            .range(v, "max_memory_mb", 1, MAX_MEMORY_MB, " (MiB)")?
            .map(|n| n as usize))
    }

    fn max_response_bytes(&self, v: &Option<Spanned<u64>>) -> Result<Option<usize>, ManifestError> {
        Ok(self
            .range(v, "max_response_bytes", 1, u64::MAX, " (bytes)")?
            .map(|n| n as usize))
    }
}

const MS: &str = " (milliseconds)";

/// `table` names where the values were written (`limits` in app.toml,
/// `application.tool.nebula.limits` in spin.toml), for error messages.
pub fn parse_limits(
    file: &Path,
    text: &str,
    table: &str,
    raw: RawLimits,
) -> Result<Limits, ManifestError> {
    let c = Checker {
        file,
        text,
        table: table.into(),
    };
    let d = Limits::default();
    Ok(Limits {
        max_body_bytes: c
            .range(&raw.max_body_bytes, "max_body_bytes", 0, u64::MAX, "")?
            .map_or(d.max_body_bytes, |n| n as usize),
        max_instances: c
            .range(&raw.max_instances, "max_instances", 1, 100_000, "")?
            .map(|n| n as u32),
        max_memory_mb: c.max_memory_mb(&raw.max_memory_mb)?,
        timeout_ms: c.timeout_ms(&raw.timeout_ms)?,
        max_response_bytes: c
            .max_response_bytes(&raw.max_response_bytes)?
            .unwrap_or(d.max_response_bytes),
        max_header_bytes: c
            .range(
                &raw.max_header_bytes,
                "max_header_bytes",
                MIN_HEADER_BYTES,
                u64::MAX,
                " (bytes; hyper's smallest read buffer)",
            )?
            .map_or(d.max_header_bytes, |n| n as usize),
        max_headers: c
            .range(&raw.max_headers, "max_headers", 1, 10_000, "")?
            .map_or(d.max_headers, |n| n as usize),
        queue_size: c
            .range(&raw.queue_size, "queue_size", 0, u64::MAX, "")?
            .map(|n| n as usize),
        queue_timeout_ms: c
            .range(&raw.queue_timeout_ms, "queue_timeout_ms", 1, u64::MAX, MS)?
            .unwrap_or(d.queue_timeout_ms),
        max_connections: c
            .range(&raw.max_connections, "max_connections", 1, u64::MAX, "")?
            .map(|n| n as usize),
        header_read_timeout_ms: c
            .range(
                &raw.header_read_timeout_ms,
                "header_read_timeout_ms",
                1,
                u64::MAX,
                MS,
            )?
            .unwrap_or(d.header_read_timeout_ms),
        body_read_timeout_ms: c
            .range(
                &raw.body_read_timeout_ms,
                "body_read_timeout_ms",
                1,
                u64::MAX,
                MS,
            )?
            .unwrap_or(d.body_read_timeout_ms),
        shutdown_grace_ms: c
            .range(&raw.shutdown_grace_ms, "shutdown_grace_ms", 0, u64::MAX, MS)?
            .unwrap_or(d.shutdown_grace_ms),
        write_timeout_ms: c
            .range(&raw.write_timeout_ms, "write_timeout_ms", 1, u64::MAX, MS)?
            .unwrap_or(d.write_timeout_ms),
        max_connections_per_ip: c
            .range(
                &raw.max_connections_per_ip,
                "max_connections_per_ip",
                1,
                u64::MAX,
                "",
            )?
            .map_or(d.max_connections_per_ip, |n| n as usize),
        max_kv_store_bytes: c
            .range(
                &raw.max_kv_store_bytes,
                "max_kv_store_bytes",
                1,
                u64::MAX,
                " (bytes)",
            )?
            .unwrap_or(d.max_kv_store_bytes),
        read: ReadLimits {
            max_rows: c
                .range(&raw.read_max_rows, "read_max_rows", 1, u64::MAX, " (rows)")?
                .unwrap_or(d.read.max_rows),
            max_bytes: c
                .range(
                    &raw.read_max_bytes,
                    "read_max_bytes",
                    1,
                    u64::MAX,
                    " (bytes)",
                )?
                .unwrap_or(d.read.max_bytes),
            timeout_ms: c
                .range(
                    &raw.read_timeout_ms,
                    "read_timeout_ms",
                    1,
                    MAX_READ_TIMEOUT_MS,
                    MS,
                )?
                .unwrap_or(d.read.timeout_ms),
        },
    })
}

/// A day: longer is a mistake, and keeps deadline arithmetic far from overflow.
const MAX_READ_TIMEOUT_MS: u64 = 86_400_000;

/// `[reads.NAME] max_rows`, `max_bytes`, `timeout_ms` over the app's
/// defaults; `table` is `reads.NAME`, for error messages.
pub fn parse_read_limits(
    file: &Path,
    text: &str,
    table: &str,
    max_rows: &Option<Spanned<u64>>,
    max_bytes: &Option<Spanned<u64>>,
    timeout_ms: &Option<Spanned<u64>>,
    defaults: ReadLimits,
) -> Result<ReadLimits, ManifestError> {
    let c = Checker {
        file,
        text,
        table: table.into(),
    };
    Ok(ReadLimits {
        max_rows: c
            .range(max_rows, "max_rows", 1, u64::MAX, " (rows)")?
            .unwrap_or(defaults.max_rows),
        max_bytes: c
            .range(max_bytes, "max_bytes", 1, u64::MAX, " (bytes)")?
            .unwrap_or(defaults.max_bytes),
        timeout_ms: c
            .range(timeout_ms, "timeout_ms", 1, MAX_READ_TIMEOUT_MS, MS)?
            .unwrap_or(defaults.timeout_ms),
    })
}

/// `table` as for [`parse_limits`], e.g. `components.NAME.limits`.
pub fn parse_component_limits(
    file: &Path,
    text: &str,
    table: &str,
    raw: RawComponentLimits,
) -> Result<ComponentLimits, ManifestError> {
    let c = Checker {
        file,
        text,
        table: table.into(),
    };
    Ok(ComponentLimits {
        timeout_ms: c.timeout_ms(&raw.timeout_ms)?,
        max_memory_mb: c.max_memory_mb(&raw.max_memory_mb)?,
        max_response_bytes: c.max_response_bytes(&raw.max_response_bytes)?,
        max_instance_reuse: c
            .range(
                &raw.max_instance_reuse,
                "max_instance_reuse",
                1,
                1_000_000,
                "",
            )?
            .map(|n| n as usize),
    })
}
