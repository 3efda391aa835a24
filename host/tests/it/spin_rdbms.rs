//! Outbound PostgreSQL and MySQL from the Spin SDK apps (spin-sdk 5.2 through
//! `spin:postgres@4.0.0` and `fermyon:spin/mysql@2.0.0`; spin-sdk 7 through
//! `spin:postgres@4.2.0` and `spin:mysql@3.0.0`) under `nebula up`, each against a fresh
//! database on the local servers, checked in the JSON the app answers and in the database.

use std::process::Command;

use crate::support::{nebula, psql, repo, succeeded, PgDatabase, Server};

const V5: &str = "guests/spin-compat/sdk-v5/spin.toml";
const V7: &str = "guests/spin-compat/sdk-v7/spin.toml";

fn start(manifest: &str) -> Server {
    Server::start_spin(manifest, &[], &[("SPIN_VARIABLE_API_KEY", "s3cret-key")])
}

/// Runs `sql` with the `mysql` client as root on 127.0.0.1:3306; its rows, tab-separated.
fn mysql(database: Option<&str>, sql: &str) -> Vec<Vec<String>> {
    let mut cmd = Command::new("mysql");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-P",
        "3306",
        "-u",
        "root",
        "-N",
        "-B",
        "-e",
        sql,
    ]);
    if let Some(db) = database {
        cmd.arg(db);
    }
    let out = cmd
        .output()
        .expect("run mysql (is the MariaDB/MySQL client installed?)");
    assert!(
        out.status.success(),
        "mysql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A database of its own on the local MySQL server, dropped with it.
struct MyDatabase(String);

impl MyDatabase {
    fn create() -> MyDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("nebula_it_{}_{nanos:x}", std::process::id());
        mysql(None, &format!("CREATE DATABASE {name}"));
        MyDatabase(name)
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.0)
    }
}

impl Drop for MyDatabase {
    fn drop(&mut self) {
        let _ = Command::new("mysql")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.0))
            .output();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn postgres_round_trip(s: &Server) {
    let db = PgDatabase::create();
    let r = s.request(
        "POST",
        &format!("/pg/roundtrip?address={}", encode(&db.url())),
        b"it's 'quoted' \xe2\x9c\x93",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    let json = r.json();
    assert_eq!(json["affected"], 1, "{json}");
    let row = &json["row"];
    let expected = serde_json::json!({
        "rbool": true,
        "rint2": -12345,
        "rint4": -1234567890,
        "rint8": -1234567890123456789i64,
        "rreal": 1.5,
        "rdouble": -2.25e100,
        "rtext": "it's 'quoted' ✓",
        "rbytea": "000102ff",
        "rdate": "1901-01-02",
        "rtime": "14:15:16.017000000",
        "rtimestamp": "1999-07-12T04:03:02.001000000",
        "rtimestamptz": "2023-11-14T22:13:20.000000000",
        "ruuid": "fedcba98-fedc-fedc-fedc-fedcba987654",
        "rjsonb": {"s": "world", "n": 234},
        "rnumeric": "123456789.123456789",
        // PostgreSQL normalises discrete ranges to [a, b).
        "r4": [[31, "inclusive"], [41, "exclusive"]],
        "r8": [[123123123123i64, "inclusive"], null],
        "rnum": [["1234.56", "exclusive"], ["4567.8", "inclusive"]],
        "i4arr": [1, null, 3],
        "i8arr": [40000000000i64, null],
        "numarr": ["100", null, "200.5"],
        "strarr": ["alice", null, "carol"],
        "rinterval": {"months": 200, "days": 10, "micros": 123456},
        "rnull": null,
    });
    assert_eq!(row, &expected);
    // And in the database, as PostgreSQL prints them.
    let rows = psql(
        &db.name,
        "SELECT rtext, rint8, rdate, ruuid, rnumeric, r4, i4arr, rinterval, rnull IS NULL \
         FROM nebula_every_type",
    );
    assert_eq!(
        rows,
        vec![vec![
            "it's 'quoted' ✓",
            "-1234567890123456789",
            "1901-01-02",
            "fedcba98-fedc-fedc-fedc-fedcba987654",
            "123456789.123456789",
            "[31,41)",
            "{1,NULL,3}",
            "16 years 8 mons 10 days 00:00:00.123456",
            "t",
        ]]
    );

    // The component may reach 127.0.0.1:5432 only: another port, or `localhost`, is
    // refused with connection-failed before any connection is made.
    for address in [
        "postgres://postgres@127.0.0.1:5433/x".to_string(),
        format!("postgres://postgres@localhost:5432/{}", db.name),
    ] {
        let r = s.get(&format!("/pg/denied?address={}", encode(&address)));
        let text = r.text();
        assert!(
            text.starts_with("denied:")
                && text.contains("ConnectionFailed")
                && text.contains("not permitted"),
            "{address}: {text}"
        );
    }
}

fn mysql_round_trip(s: &Server) {
    let db = MyDatabase::create();
    let r = s.request(
        "POST",
        &format!("/mysql/roundtrip?address={}", encode(&db.url())),
        b"it's 'quoted'",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    let json = r.json();
    let expected = serde_json::json!({
        "rbool": 1, // BOOLEAN is TINYINT(1): int8, as in Spin
        "ri8": -128,
        "ri16": -32768,
        "ri32": -2147483648i64,
        "ri64": i64::MIN,
        "ru8": 255,
        "ru16": 65535,
        "ru32": u32::MAX,
        "ru64": u64::MAX,
        "rf32": 1.5,
        "rf64": -2.25e100,
        "rvarchar": "héllo ✓",
        "rtext": "it's 'quoted'",
        "rvarbinary": "000102ff",
        "rblob": "09090909",
        "rnull": null,
    });
    assert_eq!(json["row"], expected, "{json}");
    let rows = mysql(
        Some(&db.0),
        "SELECT rtext, ri64, ru64, HEX(rvarbinary), rnull IS NULL FROM nebula_every_type",
    );
    assert_eq!(
        rows,
        vec![vec![
            "it's 'quoted'",
            "-9223372036854775808",
            "18446744073709551615",
            "000102FF",
            "1",
        ]]
    );

    for address in [
        "mysql://root@127.0.0.1:3307/x".to_string(),
        format!("mysql://root@localhost:3306/{}", db.0),
    ] {
        let r = s.get(&format!("/mysql/denied?address={}", encode(&address)));
        let text = r.text();
        assert!(
            text.starts_with("denied:")
                && text.contains("ConnectionFailed")
                && text.contains("not permitted"),
            "{address}: {text}"
        );
    }
}

#[test]
fn spin_sdk_v5_postgres_and_mysql() {
    let s = start(V5);
    postgres_round_trip(&s);
    mysql_round_trip(&s);
}

#[test]
fn spin_sdk_v7_postgres_and_mysql() {
    let s = start(V7);
    postgres_round_trip(&s);
    mysql_round_trip(&s);
}

#[test]
fn check_says_which_database_servers_each_app_may_reach() {
    crate::support::build_spin_guests();
    for (manifest, imports) in [
        (
            V5,
            &["spin:postgres/postgres@4.0.0", "fermyon:spin/mysql@2.0.0"][..],
        ),
        (
            V7,
            &["spin:postgres/postgres@4.2.0", "spin:mysql/mysql@3.0.0"][..],
        ),
    ] {
        let text = succeeded(
            nebula()
                .args(["check", "-f"])
                .arg(repo().join(manifest))
                .env("SPIN_VARIABLE_API_KEY", "k"),
        );
        for import in imports {
            assert!(text.contains(import), "{import} in:\n{text}");
        }
        for line in [
            "outbound PostgreSQL to allowed_outbound_hosts only: postgres://127.0.0.1:5432",
            "outbound MySQL to allowed_outbound_hosts only: mysql://127.0.0.1:3306",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
    }
}
