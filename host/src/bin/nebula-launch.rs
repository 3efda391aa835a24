//! A minimal socket-activation launcher, for tests and benchmarks where
//! systemd is not available: it listens, and when a connection arrives and
//! no server is running it starts the command with the listening socket as
//! fd 3 and `LISTEN_FDS=1` / `LISTEN_PID=<child pid>`, exactly as systemd's
//! `nebula.socket` would. Connections that arrive while the child starts or
//! after it exits wait in the socket's backlog, so none is lost.
//!
//! Usage: nebula-launch --listen 127.0.0.1:8080 -- nebula up --idle-exit 30

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, command) = match parse(&args) {
        Some(v) => v,
        None => {
            eprintln!("usage: nebula-launch --listen ADDR -- COMMAND [ARGS…]");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nebula-launch: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound socket");
    println!("nebula-launch: listening on http://{addr}/");
    let _ = std::io::stdout().flush();
    let fd = listener.as_raw_fd();
    let mut failures = 0;
    loop {
        if !wait_readable(fd) {
            eprintln!(
                "nebula-launch: poll failed: {}",
                std::io::Error::last_os_error()
            );
            return ExitCode::FAILURE;
        }
        // LISTEN_PID must be the server's own pid, known only after fork:
        // a shell sets it to `$$` and then execs the server in its place.
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("LISTEN_PID=$$ exec \"$@\"")
            .arg("sh")
            .args(&command)
            .env("LISTEN_FDS", "1");
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd != 3 {
                    if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
                Ok(())
            });
        }
        let started = std::time::Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("nebula-launch: cannot start {}: {e}", command[0]);
                return ExitCode::FAILURE;
            }
        };
        println!("nebula-launch: started pid {}", child.id());
        let _ = std::io::stdout().flush();
        let status = child.wait().expect("wait for the child");
        println!(
            "nebula-launch: pid {} exited ({status}) after {:.3} s",
            child.id(),
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::stdout().flush();
        // A server that exits without taking the waiting connection would
        // be started again at once, forever: stop instead.
        let quick = started.elapsed() < std::time::Duration::from_millis(200);
        failures = if status.success() && !quick {
            0
        } else {
            failures + 1
        };
        if failures >= 5 {
            eprintln!(
                "nebula-launch: the server exited 5 times in a row without serving; giving up"
            );
            return ExitCode::FAILURE;
        }
    }
}

fn parse(args: &[String]) -> Option<(String, Vec<String>)> {
    let sep = args.iter().position(|a| a == "--")?;
    let (opts, rest) = (&args[..sep], &args[sep + 1..]);
    let listen = match opts {
        [flag, addr] if flag == "--listen" => addr.clone(),
        _ => return None,
    };
    (!rest.is_empty()).then(|| (listen, rest.to_vec()))
}

/// Blocks until a connection is waiting to be accepted.
fn wait_readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, -1) };
        if r > 0 {
            return true;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}
