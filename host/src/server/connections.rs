//! What one connection may take, and how many there may be: the limits the
//! accept loop and hyper enforce before a request reaches the app.

use std::time::Duration;

use crate::manifest::Limits;

/// Descriptors kept free for the database, the compile cache, the log and
/// whatever else the host opens besides connections.
const RESERVED_FDS: u64 = 128;
/// The default connection cap when the open-file limit allows more: each
/// idle connection costs a descriptor and up to a header buffer of memory.
const DEFAULT_MAX_CONNECTIONS: u64 = 8192;

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections; further ones wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Request line and headers must arrive within this, or the connection
    /// is closed.
    pub header_read_timeout: Duration,
    /// hyper's read buffer: request line plus headers; more gets 431.
    pub max_header_bytes: usize,
    /// Header fields per request; more gets 431.
    pub max_headers: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
    /// On shutdown, how long the health check fails while connections are
    /// still accepted, before the listener closes (0: at once).
    pub drain_delay: Duration,
    /// A response write blocked this long (the client reads nothing) closes
    /// the connection.
    pub write_timeout: Duration,
    /// Open connections from one client address; past it, new ones from
    /// that address are closed at once.
    pub max_connections_per_ip: usize,
}

impl ConnectionLimits {
    pub fn from_manifest(limits: &Limits) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: limits
                .max_connections
                .unwrap_or_else(default_max_connections),
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            max_header_bytes: limits.max_header_bytes,
            max_headers: limits.max_headers,
            shutdown_grace: Duration::from_millis(limits.shutdown_grace_ms),
            drain_delay: Duration::ZERO,
            write_timeout: Duration::from_millis(limits.write_timeout_ms),
            max_connections_per_ip: limits.max_connections_per_ip,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from_manifest(&Limits::default())
    }
}

/// As many connections as the open-file limit leaves room for, at most
/// [`DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections() -> usize {
    let soft = open_file_limit().map_or(1024, |(soft, _)| soft);
    soft.saturating_sub(RESERVED_FDS)
        .clamp(16, DEFAULT_MAX_CONNECTIONS) as usize
}

/// The process's (soft, hard) limit on open files.
pub fn open_file_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            return Some((lim.rlim_cur, lim.rlim_max));
        }
    }
    None
}

/// Raises the soft open-file limit to the hard one: the soft default (often
/// 1024) is what a server runs out of first under a flood of connections,
/// and raising it needs no privilege. Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let (soft, hard) = open_file_limit()?;
        if soft < hard {
            let lim = libc::rlimit {
                rlim_cur: hard as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit only reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                tracing::warn!(
                    soft,
                    hard,
                    "cannot raise the open-file limit: {}",
                    std::io::Error::last_os_error()
                );
                return Some(soft);
            }
        }
        return open_file_limit().map(|(soft, _)| soft);
    }
    #[allow(unreachable_code)]
    None
}
