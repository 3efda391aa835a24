//! Socket activation as systemd does it: the listening socket arrives as
//! file descriptor 3, announced by `LISTEN_FDS` and `LISTEN_PID`.

use anyhow::{bail, Context, Result};

const FIRST_FD: i32 = 3;

/// The inherited listening socket, if this process was socket-activated.
pub fn inherited_listener() -> Result<Option<tokio::net::TcpListener>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    // The variables are meant for the process they name, not its children.
    if pid.trim() != std::process::id().to_string() {
        return Ok(None);
    }
    // SAFETY: removing variables before any other thread reads the environment.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let n: i32 = fds
        .trim()
        .parse()
        .with_context(|| format!("LISTEN_FDS={fds:?} is not a number"))?;
    if n < 1 {
        return Ok(None);
    }
    if n > 1 {
        tracing::warn!("LISTEN_FDS={n}: serving on the first socket only");
    }
    use std::os::fd::FromRawFd;
    // SAFETY: by the socket-activation protocol fd 3 is ours and open.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(FIRST_FD) };
    if std_listener.local_addr().is_err() {
        bail!("LISTEN_FDS is set but fd {FIRST_FD} is not a listening TCP socket");
    }
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    tracing::info!(addr = %listener.local_addr()?, "serving on the socket passed by the service manager");
    Ok(Some(listener))
}
