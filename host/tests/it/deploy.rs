//! The systemd units in deploy/: they load, and the service runs as an
//! unprivileged dynamic user behind systemd's filesystem protections.

use std::process::Command;

use crate::support::repo;

/// The units with ExecStart pointing at the nebula just built, so that
/// `systemd-analyze verify` checks a binary that exists.
fn units_here() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["nebula.socket", "nebula.service"] {
        let text = std::fs::read_to_string(repo().join("deploy").join(unit)).unwrap();
        let text = text.replace("/usr/local/bin/nebula", env!("CARGO_BIN_EXE_nebula"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    dir
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed to check deploy/")
}

#[test]
fn the_units_load_and_the_service_is_confined() {
    let dir = units_here();
    let socket = dir.path().join("nebula.socket");
    let service = dir.path().join("nebula.service");
    let out = systemd_analyze(&[
        "verify",
        socket.to_str().unwrap(),
        service.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&service).unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "{line} missing from deploy/nebula.service"
        );
    }
    // systemd's own score of what the service could reach: 0 is fully
    // confined, 10 not at all (a plain root service scores 9.6). It must
    // stay in systemd's "OK" band.
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=20",
        service.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure over 2.0:\n{}",
        report
            .lines()
            .filter(|l| l.contains('✗') || l.contains("Overall"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The folders it writes are the ones it is given, and they are flags
    // nebula accepts.
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    for flag in [
        "--db /var/lib/academemes/",
        "--cache-dir /var/cache/academemes/",
    ] {
        assert!(exec.contains(flag), "{exec}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_nebula"))
        .args(["up", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in exec.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(help.contains(flag), "nebula up has no {flag}");
    }
}
