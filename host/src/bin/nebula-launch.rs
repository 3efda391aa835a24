//! A minimal socket-activation launcher, for tests and benchmarks where
//! systemd is not available: it listens, and when a connection arrives and
//! no server is running it starts the command with the listening socket as
//! fd 3 and `LISTEN_FDS=1` / `LISTEN_PID=<child pid>`, exactly as systemd's
//! `nebula.socket` would. Connections that arrive while the child starts or
//! after it exits wait in the socket's backlog, so none is lost.
//!
//! Usage: nebula-launch --listen 127.0.0.1:8080 -- nebula up --idle-exit 30

use std::ffi::{c_char, CString, OsString};
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode};

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
        let started = std::time::Instant::now();
        let mut child = match spawn_activated(&command, fd) {
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

/// Starts `command` with the listening socket `fd` as fd 3, `LISTEN_FDS=1`
/// and `LISTEN_PID` set to its own pid. The pid is known only after fork, so
/// the child writes it into an environment prepared beforehand and execs the
/// command itself: no shell in between (a `sh -c 'LISTEN_PID=$$ exec …'`
/// cost ~0.8 ms of every cold start here, benches/RESULTS.md).
fn spawn_activated(command: &[String], fd: i32) -> std::io::Result<Child> {
    let mut exec = Exec::new(command)?;
    let mut cmd = Command::new(&command[0]);
    // SAFETY: between fork and exec the child only calls dup2, fcntl,
    // getpid and execvpe (async-signal-safe) and writes into memory that was
    // allocated before the fork; it allocates nothing.
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
            exec.set_pid(libc::getpid() as u32);
            libc::execvpe(exec.argv[0], exec.argv.as_ptr(), exec.envp.as_ptr());
            // Only reached if exec failed; `spawn` reports the error.
            Err(std::io::Error::last_os_error())
        });
    }
    cmd.spawn()
}

/// Everything execvpe needs, allocated before the fork.
struct Exec {
    _args: Vec<CString>,
    /// The command's arguments, NULL-terminated; the first is the program.
    argv: Vec<*const c_char>,
    _vars: Vec<CString>,
    /// `LISTEN_PID=` followed by room for the digits and the NUL.
    pid_var: Box<[u8; PID_VAR_LEN]>,
    envp: Vec<*const c_char>,
}

const PID_PREFIX: &[u8] = b"LISTEN_PID=";
const PID_VAR_LEN: usize = PID_PREFIX.len() + 11;

// SAFETY: the pointers point into buffers `Exec` owns, which do not move
// when `Exec` does; it is only used by the one child it is moved into.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

impl Exec {
    fn new(command: &[String]) -> std::io::Result<Exec> {
        let cstring = |b: &[u8]| {
            CString::new(b).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a NUL byte in the command or environment",
                )
            })
        };
        let args = command
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            if k == "LISTEN_FDS" || k == "LISTEN_PID" {
                continue;
            }
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            vars.push(cstring(kv.as_bytes())?);
        }
        vars.push(cstring(b"LISTEN_FDS=1")?);
        let mut pid_var = Box::new([0u8; PID_VAR_LEN]);
        pid_var[..PID_PREFIX.len()].copy_from_slice(PID_PREFIX);
        let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = vars.iter().map(|v| v.as_ptr()).collect();
        envp.push(pid_var.as_ptr().cast());
        envp.push(std::ptr::null());
        Ok(Exec {
            _args: args,
            argv,
            _vars: vars,
            pid_var,
            envp,
        })
    }

    /// Writes `pid` in decimal after `LISTEN_PID=`, without allocating.
    fn set_pid(&mut self, pid: u32) {
        let mut digits = [0u8; 10];
        let mut n = pid;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let out = &mut self.pid_var[PID_PREFIX.len()..];
        for i in 0..len {
            out[i] = digits[len - 1 - i];
        }
        out[len] = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_var_of(pid: u32) -> String {
        let mut exec = Exec::new(&["true".to_string()]).unwrap();
        exec.set_pid(pid);
        let end = exec.pid_var.iter().position(|&b| b == 0).unwrap();
        String::from_utf8(exec.pid_var[..end].to_vec()).unwrap()
    }

    #[test]
    fn the_pid_is_written_in_decimal_after_the_prefix() {
        assert_eq!(pid_var_of(0), "LISTEN_PID=0");
        assert_eq!(pid_var_of(7), "LISTEN_PID=7");
        assert_eq!(pid_var_of(4_194_304), "LISTEN_PID=4194304");
        assert_eq!(pid_var_of(u32::MAX), "LISTEN_PID=4294967295");
        // A shorter pid after a longer one leaves no digits behind.
        let mut exec = Exec::new(&["true".to_string()]).unwrap();
        exec.set_pid(123_456);
        exec.set_pid(42);
        let end = exec.pid_var.iter().position(|&b| b == 0).unwrap();
        assert_eq!(&exec.pid_var[..end], b"LISTEN_PID=42");
    }

    #[test]
    fn the_child_sees_its_own_pid_and_one_listen_fd_and_no_inherited_values() {
        std::env::set_var("LISTEN_PID", "1");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let out = std::env::temp_dir().join(format!("nebula-launch-test-{}", std::process::id()));
        let script = format!(
            "echo \"$$ $LISTEN_PID $LISTEN_FDS\" > {}; test -e /proc/self/fd/3",
            out.display()
        );
        let command = ["sh".to_string(), "-c".to_string(), script];
        let mut child = spawn_activated(&command, listener.as_raw_fd()).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "fd 3 was not passed to the child");
        let seen = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        let id = child.id().to_string();
        assert_eq!(seen.trim(), format!("{id} {id} 1"));
    }

    #[test]
    fn a_command_that_cannot_be_run_is_an_error_from_spawn() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let command = ["/nonexistent/nebula-launch-test".to_string()];
        let err = spawn_activated(&command, listener.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
