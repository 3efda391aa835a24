//! The PostgreSQL and MySQL units against the real servers on loopback (PostgreSQL
//! 127.0.0.1:5432 user `postgres`, trust; MariaDB/MySQL 127.0.0.1:3306 user `root`, no
//! password). Each test creates a database of its own and drops it, even when it fails.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable as _;
use tokio::sync::oneshot;
use wasmtime::component::{
    Accessor, FutureConsumer, FutureReader, HasSelf, Resource, Source, StreamConsumer,
    StreamReader, StreamResult,
};
use wasmtime::{Engine, Store, StoreContextMut};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::fermyon::spin::mysql as my2;
use crate::bindings::fermyon::spin::postgres as pg2;
use crate::bindings::fermyon::spin::rdbms_types as v2t;
use crate::bindings::spin::mysql::mysql::{self as my3, HostConnectionWithStore as _};
use crate::bindings::spin::postgres3_0_0::postgres as pg3;
use crate::bindings::spin::postgres4_2_0::postgres::{self as pg4, HostConnectionWithStore as _};
use crate::unit::InstanceContext;
use crate::*;

const PG: &str = "postgres://postgres@127.0.0.1:5432";
const MY: &str = "mysql://root@127.0.0.1:3306";

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `f` on a runtime of its own, on another thread: for the guards' drops, which may
/// run inside a test's runtime.
fn on_own_runtime<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap();
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("{PG}/postgres"), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, trust)");
    tokio::spawn(conn);
    client
}

/// A fresh PostgreSQL database, dropped with the guard.
struct PgDb(String);

impl PgDb {
    async fn new() -> Self {
        let name = unique("nebula_rdbms_pg");
        pg_admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        PgDb(name)
    }

    fn address(&self) -> String {
        format!("{PG}/{}", self.0)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.0.clone();
        on_own_runtime(async move {
            let _ = pg_admin()
                .await
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}

/// A fresh MySQL database, dropped with the guard.
struct MyDb(String);

async fn my_admin() -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(MY).unwrap())
        .await
        .expect("MySQL/MariaDB on 127.0.0.1:3306 (user root, no password)")
}

impl MyDb {
    async fn new() -> Self {
        let name = unique("nebula_rdbms_my");
        let mut conn = my_admin().await;
        conn.query_drop(format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let _ = conn.disconnect().await;
        MyDb(name)
    }

    fn address(&self) -> String {
        format!("{MY}/{}", self.0)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let name = self.0.clone();
        on_own_runtime(async move {
            let mut conn = my_admin().await;
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                .await;
            let _ = conn.disconnect().await;
        });
    }
}

fn allowed(entries: &[&str]) -> Arc<AllowedHosts> {
    Arc::new(
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
    )
}

fn limits(timeout_ms: u64, max_result_bytes: usize) -> CallLimits {
    CallLimits {
        statement_timeout: Duration::from_millis(timeout_ms),
        max_result_bytes,
    }
}

fn pg_instance(entries: &[&str], limits: CallLimits) -> (Arc<PostgresComponent>, PostgresInstance) {
    let component = Arc::new(PostgresComponent::new(PostgresGrants {
        allowed_outbound_hosts: entries.iter().map(|s| s.to_string()).collect(),
        allowed_hosts: allowed(entries),
        limits,
    }));
    let instance = Postgres::prepare(&component, &InstanceContext::new(Blocking::tokio()));
    (component, instance)
}

fn my_instance(entries: &[&str], limits: CallLimits) -> (Arc<MysqlComponent>, MysqlInstance) {
    let component = Arc::new(MysqlComponent::new(MysqlGrants {
        allowed_outbound_hosts: entries.iter().map(|s| s.to_string()).collect(),
        allowed_hosts: allowed(entries),
        limits,
    }));
    let instance = Mysql::prepare(&component, &InstanceContext::new(Blocking::tokio()));
    (component, instance)
}

/// The generated WIT types have no `PartialEq`; their `Debug` text shows every field.
fn dbg_of<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

// ---- PostgreSQL -----------------------------------------------------------------------------

const PG_TABLE: &str = "CREATE TABLE every_type (
    id serial PRIMARY KEY,
    rbool boolean, rint2 int2, rint4 int4, rint8 int8, rreal real, rdouble double precision,
    rtext text, rbytea bytea, rdate date, rtime time, rtimestamp timestamp,
    rtimestamptz timestamptz, ruuid uuid, rjsonb jsonb, rnumeric numeric,
    r4 int4range, r8 int8range, rnum numrange, i4arr int4[], i8arr int8[], numarr numeric[],
    strarr text[], rinterval interval, rnull text
)";

const PG_COLUMNS: &str = "rbool, rint2, rint4, rint8, rreal, rdouble, rtext, rbytea, rdate, \
    rtime, rtimestamp, rtimestamptz, ruuid, rjsonb, rnumeric, r4, r8, rnum, i4arr, i8arr, \
    numarr, strarr, rinterval, rnull";

fn pg_params() -> Vec<pg4::ParameterValue> {
    use pg4::ParameterValue as P;
    use pg4::RangeBoundKind::{Exclusive, Inclusive};
    vec![
        P::Boolean(true),
        P::Int16(-12345),
        P::Int32(-1234567890),
        P::Int64(-1234567890123456789),
        P::Floating32(1.5),
        P::Floating64(-2.25e100),
        P::Str("héllo 'quoted' ✓".into()),
        P::Binary(vec![0, 1, 2, 255]),
        P::Date((1901, 1, 2)),
        P::Time((14, 15, 16, 17_000_000)),
        P::Datetime((1999, 7, 12, 4, 3, 2, 1_000_000)),
        P::Timestamp(1_700_000_000),
        P::Uuid("fedcba98-fedc-fedc-fedc-fedcba987654".into()),
        P::Jsonb(br#"{"s":"world","n":234,"b":false,"x":null}"#.to_vec()),
        P::Decimal("123456789.123456789".into()),
        P::RangeInt32((Some((30, Exclusive)), Some((40, Inclusive)))),
        P::RangeInt64((Some((123123123123, Inclusive)), None)),
        P::RangeDecimal((
            Some(("1234.56".into(), Exclusive)),
            Some(("456789012345.789123".into(), Inclusive)),
        )),
        P::ArrayInt32(vec![Some(1), None, Some(3)]),
        P::ArrayInt64(vec![Some(40_000_000_000), None]),
        P::ArrayDecimal(vec![Some("100".into()), None, Some("200.123456789".into())]),
        P::ArrayStr(vec![Some("alice".into()), None, Some("carol".into())]),
        P::Interval(pg4::Interval {
            micros: 123456,
            days: 10,
            months: 200,
        }),
        P::DbNull,
    ]
}

/// What comes back: the same values, except what PostgreSQL normalises (discrete ranges
/// become `[a, b)`) and the timestamp, which reads back as a UTC datetime.
fn pg_expected() -> Vec<pg4::DbValue> {
    use pg4::DbValue as V;
    use pg4::RangeBoundKind::{Exclusive, Inclusive};
    vec![
        V::Boolean(true),
        V::Int16(-12345),
        V::Int32(-1234567890),
        V::Int64(-1234567890123456789),
        V::Floating32(1.5),
        V::Floating64(-2.25e100),
        V::Str("héllo 'quoted' ✓".into()),
        V::Binary(vec![0, 1, 2, 255]),
        V::Date((1901, 1, 2)),
        V::Time((14, 15, 16, 17_000_000)),
        V::Datetime((1999, 7, 12, 4, 3, 2, 1_000_000)),
        V::Datetime((2023, 11, 14, 22, 13, 20, 0)),
        V::Uuid("fedcba98-fedc-fedc-fedc-fedcba987654".into()),
        V::Jsonb(br#"{"b":false,"n":234,"s":"world","x":null}"#.to_vec()),
        V::Decimal("123456789.123456789".into()),
        V::RangeInt32((Some((31, Inclusive)), Some((41, Exclusive)))),
        V::RangeInt64((Some((123123123123, Inclusive)), None)),
        V::RangeDecimal((
            Some(("1234.56".into(), Exclusive)),
            Some(("456789012345.789123".into(), Inclusive)),
        )),
        V::ArrayInt32(vec![Some(1), None, Some(3)]),
        V::ArrayInt64(vec![Some(40_000_000_000), None]),
        V::ArrayDecimal(vec![Some("100".into()), None, Some("200.123456789".into())]),
        V::ArrayStr(vec![Some("alice".into()), None, Some("carol".into())]),
        V::Interval(pg4::Interval {
            micros: 123456,
            days: 10,
            months: 200,
        }),
        V::DbNull,
    ]
}

fn pg_insert_sql() -> String {
    let placeholders: Vec<String> = (1..=24).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO every_type ({PG_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    )
}

#[tokio::test]
async fn pg_every_type_round_trips_through_parameters() {
    let db = PgDb::new().await;
    let (_, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], CallLimits::default());
    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    pg4::HostConnection::execute(&mut pg, borrow(&c), PG_TABLE.into(), vec![])
        .await
        .unwrap()
        .unwrap();
    let inserted = pg4::HostConnection::execute(&mut pg, borrow(&c), pg_insert_sql(), pg_params())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inserted, 1);

    let rows = pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        format!("SELECT {PG_COLUMNS} FROM every_type"),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rows.rows.len(), 1);
    let names: Vec<&str> = rows.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.join(", "), PG_COLUMNS);
    assert!(matches!(rows.columns[13].data_type, pg4::DbDataType::Jsonb));
    assert!(matches!(
        rows.columns[16].data_type,
        pg4::DbDataType::RangeInt64
    ));
    assert!(matches!(
        rows.columns[22].data_type,
        pg4::DbDataType::Interval
    ));
    for (i, (got, want)) in rows.rows[0].iter().zip(pg_expected()).enumerate() {
        assert_eq!(
            dbg_of(got),
            dbg_of(&want),
            "column {}",
            rows.columns[i].name
        );
    }

    // The parameters also work in WHERE clauses (ranges and arrays as the conformance
    // suite uses them).
    let hit = pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        "SELECT id FROM every_type WHERE $1::int4 <@ r4 AND array_position(i4arr, $2) IS NOT NULL"
            .into(),
        vec![
            pg4::ParameterValue::Int32(40),
            pg4::ParameterValue::Int32(3),
        ],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        dbg_of(&hit.rows),
        dbg_of(&vec![vec![pg4::DbValue::Int32(1)]])
    );

    // execute answers the rows affected.
    pg4::HostConnection::execute(&mut pg, borrow(&c), pg_insert_sql(), pg_params())
        .await
        .unwrap()
        .unwrap();
    let updated = pg4::HostConnection::execute(
        &mut pg,
        borrow(&c),
        "UPDATE every_type SET rtext = $1".into(),
        vec![pg4::ParameterValue::Str("x".into())],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(updated, 2);
    let empty = pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        "SELECT id, rtext FROM every_type WHERE id < 0".into(),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    assert!(empty.rows.is_empty());
    assert_eq!(empty.columns.len(), 2, "columns are known without rows");

    // The older interfaces see what their WIT has, the rest as `unsupported`.
    let c3 = pg3::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    let v3 = pg3::HostConnection::query(
        &mut pg,
        borrow(&c3),
        "SELECT rint8, rdate, ruuid, rnull FROM every_type WHERE id = $1".into(),
        vec![pg3::ParameterValue::Int32(1)],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        dbg_of(&v3.rows[0]),
        dbg_of(&vec![
            pg3::DbValue::Int64(-1234567890123456789),
            pg3::DbValue::Date((1901, 1, 2)),
            pg3::DbValue::Unsupported,
            pg3::DbValue::DbNull
        ])
    );
    assert!(matches!(v3.columns[1].data_type, pg3::DbDataType::Date));
    assert!(matches!(v3.columns[2].data_type, pg3::DbDataType::Other));
    let c2 = pg2::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    let v2 = pg2::HostConnection::query(
        &mut pg,
        borrow(&c2),
        "SELECT rbool, rbytea, rdate FROM every_type WHERE id = $1".into(),
        vec![v2t::ParameterValue::Int32(1)],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        dbg_of(&v2.rows[0]),
        dbg_of(&vec![
            v2t::DbValue::Boolean(true),
            v2t::DbValue::Binary(vec![0, 1, 2, 255]),
            v2t::DbValue::Unsupported
        ])
    );
    assert!(matches!(
        pg2::HostConnection::execute(
            &mut pg,
            borrow(&c2),
            "SELECT $1".into(),
            vec![v2t::ParameterValue::Uint8(1)]
        )
        .await
        .unwrap(),
        Err(v2t::Error::ValueConversionFailed(_))
    ));

    for c in [c, c3, c2] {
        pg4::HostConnection::drop(&mut pg, Resource::new_own(c.rep())).unwrap();
    }
    assert_eq!(pg.open_handles(), 0);
}

#[tokio::test]
async fn pg_errors_are_spins() {
    let db = PgDb::new().await;
    let (_, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], CallLimits::default());
    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    match pg4::HostConnection::query(&mut pg, borrow(&c), "SELECT * FROM nowhere".into(), vec![])
        .await
        .unwrap()
    {
        Err(pg4::Error::QueryFailed(pg4::QueryError::DbError(e))) => {
            assert_eq!(e.code, "42P01", "{e:?}");
            assert_eq!(e.severity, "ERROR");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pg4::HostConnection::query(
            &mut pg,
            borrow(&c),
            "SELECT $1::uuid".into(),
            vec![pg4::ParameterValue::Uuid("not a uuid".into())]
        )
        .await
        .unwrap(),
        Err(pg4::Error::BadParameter(_))
    ));
    // set-ca-root says plainly that there is no TLS.
    let b = pg4::HostConnectionBuilder::new(&mut pg, db.address()).unwrap();
    assert!(matches!(
        pg4::HostConnectionBuilder::set_ca_root(&mut pg, borrow(&b), "pem".into()).unwrap(),
        Err(pg4::Error::Other(m)) if m.contains("TLS")
    ));
    let built = pg4::HostConnectionBuilder::build(&mut pg, borrow(&b))
        .await
        .unwrap()
        .unwrap();
    pg4::HostConnectionBuilder::drop(&mut pg, b).unwrap();
    pg4::HostConnection::drop(&mut pg, built).unwrap();
    pg4::HostConnection::drop(&mut pg, c).unwrap();
}

/// A listener that must not be connected to.
async fn untouched_listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

async fn assert_never_connected(listener: &tokio::net::TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a refused address was connected to");
}

#[tokio::test]
async fn pg_refused_addresses_make_no_connection() {
    let (listener, port) = untouched_listener().await;
    // The text is not allowed: another port, another name.
    let (_, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], CallLimits::default());
    for address in [
        format!("postgres://postgres@127.0.0.1:{port}/db"),
        format!("host=127.0.0.1 port={port} user=postgres"),
        format!("postgres://postgres@localhost:{port}/db"),
    ] {
        match pg4::HostConnection::open(&mut pg, address.clone())
            .await
            .unwrap()
        {
            Err(pg4::Error::ConnectionFailed(m)) => {
                assert!(m.contains("is not permitted"), "{address}: {m}")
            }
            other => panic!("{address}: {other:?}"),
        }
    }
    // Allowed as text, but the name resolves to the loopback, which only an IP entry (or
    // `localhost` written out) grants.
    let (_, mut pg) = pg_instance(&["postgres://*:*"], CallLimits::default());
    match pg4::HostConnection::open(&mut pg, format!("postgres://postgres@localhost:{port}/db"))
        .await
        .unwrap()
    {
        Err(pg4::Error::ConnectionFailed(m)) => assert!(m.contains("internal addresses"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The older interfaces say it with their own error type.
    assert!(matches!(
        pg2::HostConnection::open(&mut pg, format!("postgres://u@localhost:{port}/db"))
            .await
            .unwrap(),
        Err(v2t::Error::ConnectionFailed(_))
    ));
    assert_never_connected(&listener).await;
    assert_eq!(pg.open_handles(), 0);
}

#[tokio::test]
async fn pg_result_over_the_cap_fails() {
    let db = PgDb::new().await;
    let (_, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], limits(30_000, 64 << 10));
    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    let small = pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        "SELECT repeat('x', 1000) FROM generate_series(1, 10)".into(),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(small.rows.len(), 10);
    match pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        "SELECT repeat('x', 1000) FROM generate_series(1, 1000)".into(),
        vec![],
    )
    .await
    .unwrap()
    {
        Err(pg4::Error::QueryFailed(pg4::QueryError::Text(m))) => {
            assert!(m.contains("larger than this component may receive"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // The connection is still usable.
    assert_eq!(
        pg4::HostConnection::execute(&mut pg, borrow(&c), "SELECT 1".into(), vec![])
            .await
            .unwrap()
            .unwrap(),
        1
    );
    pg4::HostConnection::drop(&mut pg, c).unwrap();
}

#[tokio::test]
async fn pg_query_past_the_deadline_fails() {
    let db = PgDb::new().await;
    let (_, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], limits(500, usize::MAX));
    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let result =
        pg4::HostConnection::query(&mut pg, borrow(&c), "SELECT pg_sleep(10)".into(), vec![])
            .await
            .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    match result {
        Err(pg4::Error::QueryFailed(e)) => {
            let text = format!("{e:?}");
            assert!(
                text.contains("time limit") || text.contains("statement timeout"),
                "{text}"
            )
        }
        other => panic!("{other:?}"),
    }
    pg4::HostConnection::drop(&mut pg, c).unwrap();
}

#[tokio::test]
async fn pg_connections_are_pooled_and_cleaned() {
    let db = PgDb::new().await;
    let (component, mut pg) = pg_instance(&["postgres://127.0.0.1:5432"], CallLimits::default());
    let pid = async |pg: &mut PostgresInstance, c: &Resource<PgConnection>| {
        pg4::HostConnection::query(pg, borrow(c), "SELECT pg_backend_pid()".into(), vec![])
            .await
            .unwrap()
            .unwrap()
            .rows[0][0]
            .clone()
    };
    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    let first = pid(&mut pg, &c).await;
    // Leave state behind: a temporary table, a setting and an open transaction.
    for sql in [
        "CREATE TEMP TABLE scratch (x int)",
        "SET application_name = 'dirty'",
        "BEGIN",
        "CREATE TABLE half_done (x int)",
    ] {
        pg4::HostConnection::execute(&mut pg, borrow(&c), sql.into(), vec![])
            .await
            .unwrap()
            .unwrap();
    }
    pg4::HostConnection::drop(&mut pg, c).unwrap();
    assert_eq!(component.idle_connections(), 1);

    let c = pg4::HostConnection::open(&mut pg, db.address())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(component.idle_connections(), 0);
    assert_eq!(
        dbg_of(&pid(&mut pg, &c).await),
        dbg_of(&first),
        "the pooled connection is reused"
    );
    let state = pg4::HostConnection::query(
        &mut pg,
        borrow(&c),
        "SELECT current_setting('application_name'), to_regclass('scratch')::text, \
         to_regclass('half_done')::text, current_setting('statement_timeout')"
            .into(),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        dbg_of(&state.rows[0]),
        dbg_of(&vec![
            pg4::DbValue::Str(String::new()),
            pg4::DbValue::DbNull,
            pg4::DbValue::DbNull,
            pg4::DbValue::Str("30s".into()),
        ])
    );
    pg4::HostConnection::drop(&mut pg, c).unwrap();
}

// ---- MySQL ----------------------------------------------------------------------------------

const MY_TABLE: &str = "CREATE TABLE every_type (
    id INT AUTO_INCREMENT PRIMARY KEY,
    rbool BOOLEAN, ri8 TINYINT, ri16 SMALLINT, ri32 INT, ri64 BIGINT,
    ru8 TINYINT UNSIGNED, ru16 SMALLINT UNSIGNED, ru32 INT UNSIGNED, ru64 BIGINT UNSIGNED,
    rf32 FLOAT, rf64 DOUBLE, rvarchar VARCHAR(100), rtext TEXT, rvarbinary VARBINARY(100),
    rblob BLOB, rnull VARCHAR(10)
)";

const MY_COLUMNS: &str = "rbool, ri8, ri16, ri32, ri64, ru8, ru16, ru32, ru64, rf32, rf64, \
    rvarchar, rtext, rvarbinary, rblob, rnull";

fn my_params() -> Vec<v2t::ParameterValue> {
    use v2t::ParameterValue as P;
    vec![
        P::Boolean(true),
        P::Int8(-128),
        P::Int16(-32768),
        P::Int32(-2147483648),
        P::Int64(i64::MIN),
        P::Uint8(255),
        P::Uint16(65535),
        P::Uint32(u32::MAX),
        P::Uint64(u64::MAX),
        P::Floating32(1.5),
        P::Floating64(-2.25e100),
        P::Str("héllo ✓".into()),
        P::Str("a longer text".into()),
        P::Binary(vec![0, 1, 2, 255]),
        P::Binary(vec![9; 300]),
        P::DbNull,
    ]
}

/// BOOLEAN is TINYINT(1) in MySQL, so `true` reads back as `int8(1)`, as in Spin.
fn my_expected() -> Vec<v2t::DbValue> {
    use v2t::DbValue as V;
    vec![
        V::Int8(1),
        V::Int8(-128),
        V::Int16(-32768),
        V::Int32(-2147483648),
        V::Int64(i64::MIN),
        V::Uint8(255),
        V::Uint16(65535),
        V::Uint32(u32::MAX),
        V::Uint64(u64::MAX),
        V::Floating32(1.5),
        V::Floating64(-2.25e100),
        V::Str("héllo ✓".into()),
        V::Str("a longer text".into()),
        V::Binary(vec![0, 1, 2, 255]),
        V::Binary(vec![9; 300]),
        V::DbNull,
    ]
}

fn my_insert_sql() -> String {
    format!(
        "INSERT INTO every_type ({MY_COLUMNS}) VALUES ({})",
        vec!["?"; 16].join(", ")
    )
}

#[tokio::test]
async fn mysql_every_type_round_trips_through_parameters() {
    let db = MyDb::new().await;
    let (_, mut my) = my_instance(&["mysql://127.0.0.1:3306"], CallLimits::default());
    let c = my2::HostConnection::open(&mut my, db.address())
        .await
        .unwrap()
        .unwrap();
    my2::HostConnection::execute(&mut my, borrow(&c), MY_TABLE.into(), vec![])
        .await
        .unwrap()
        .unwrap();
    my2::HostConnection::execute(&mut my, borrow(&c), my_insert_sql(), my_params())
        .await
        .unwrap()
        .unwrap();
    let rows = my2::HostConnection::query(
        &mut my,
        borrow(&c),
        format!("SELECT {MY_COLUMNS} FROM every_type"),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    let names: Vec<&str> = rows.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.join(", "), MY_COLUMNS);
    assert_eq!(rows.rows.len(), 1);
    for (i, (got, want)) in rows.rows[0].iter().zip(my_expected()).enumerate() {
        assert_eq!(
            dbg_of(got),
            dbg_of(&want),
            "column {}",
            rows.columns[i].name
        );
    }
    assert!(matches!(rows.columns[8].data_type, v2t::DbDataType::Uint64));
    assert!(matches!(
        rows.columns[13].data_type,
        v2t::DbDataType::Binary
    ));
    // A column type outside the WIT fails the query, as in Spin.
    assert!(matches!(
        my2::HostConnection::query(
            &mut my,
            borrow(&c),
            "SELECT CAST(1.5 AS DECIMAL(4,2))".into(),
            vec![]
        )
        .await
        .unwrap(),
        Err(v2t::Error::ValueConversionFailed(_))
    ));
    assert!(matches!(
        my2::HostConnection::query(&mut my, borrow(&c), "SELECT * FROM nowhere".into(), vec![])
            .await
            .unwrap(),
        Err(v2t::Error::QueryFailed(_))
    ));
    my2::HostConnection::drop(&mut my, c).unwrap();
    assert_eq!(my.open_handles(), 0);
}

#[tokio::test]
async fn mysql_refused_addresses_make_no_connection() {
    let (listener, port) = untouched_listener().await;
    let (_, mut my) = my_instance(&["mysql://127.0.0.1:3306"], CallLimits::default());
    for address in [
        format!("mysql://root@127.0.0.1:{port}/db"),
        format!("mysql://root@localhost:{port}/db"),
        "mysql://root@localhost/db".to_string(),
    ] {
        match my2::HostConnection::open(&mut my, address.clone())
            .await
            .unwrap()
        {
            Err(v2t::Error::ConnectionFailed(m)) => {
                assert!(m.contains("is not permitted"), "{address}: {m}")
            }
            other => panic!("{address}: {other:?}"),
        }
    }
    let (_, mut my) = my_instance(&["mysql://*:*"], CallLimits::default());
    match my2::HostConnection::open(&mut my, format!("mysql://root@localhost:{port}/db"))
        .await
        .unwrap()
    {
        Err(v2t::Error::ConnectionFailed(m)) => assert!(m.contains("internal addresses"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_never_connected(&listener).await;
}

#[tokio::test]
async fn mysql_cap_deadline_and_pool() {
    let db = MyDb::new().await;
    let (component, mut my) = my_instance(&["mysql://127.0.0.1:3306"], limits(700, 64 << 10));
    let c = my2::HostConnection::open(&mut my, db.address())
        .await
        .unwrap()
        .unwrap();
    match my2::HostConnection::query(
        &mut my,
        borrow(&c),
        "SELECT REPEAT('x', 1000) FROM information_schema.columns LIMIT 1000".into(),
        vec![],
    )
    .await
    .unwrap()
    {
        Err(v2t::Error::Other(m)) => assert!(m.contains("larger than"), "{m}"),
        other => panic!("{other:?}"),
    }
    let started = Instant::now();
    let slow = my2::HostConnection::query(&mut my, borrow(&c), "SELECT SLEEP(10)".into(), vec![])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{slow:?}");
    // MariaDB stops it at max_statement_time (an error while reading rows: `other`, as in
    // Spin), or the client's deadline does (`query-failed`).
    match slow {
        Err(v2t::Error::QueryFailed(m) | v2t::Error::Other(m)) => assert!(
            m.contains("max_statement_time") || m.contains("time limit"),
            "{m}"
        ),
        Ok(rows) => assert_eq!(
            dbg_of(&rows.rows),
            dbg_of(&vec![vec![v2t::DbValue::Int64(1)]])
        ),
        other => panic!("{other:?}"),
    }
    my2::HostConnection::drop(&mut my, c).unwrap();
    // Left-over session state is reset before the connection is reused.
    let c = my2::HostConnection::open(&mut my, db.address())
        .await
        .unwrap()
        .unwrap();
    my2::HostConnection::execute(&mut my, borrow(&c), "SET @leftover = 42".into(), vec![])
        .await
        .unwrap()
        .unwrap();
    let idle_before = component.idle_connections();
    my2::HostConnection::drop(&mut my, c).unwrap();
    assert_eq!(component.idle_connections(), idle_before + 1);
    let c = my2::HostConnection::open(&mut my, db.address())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(component.idle_connections(), idle_before);
    let left = my2::HostConnection::query(
        &mut my,
        borrow(&c),
        "SELECT CAST(@leftover AS CHAR)".into(),
        vec![],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        dbg_of(&left.rows),
        dbg_of(&vec![vec![v2t::DbValue::DbNull]])
    );
    my2::HostConnection::drop(&mut my, c).unwrap();
}

// ---- the async functions, as wasmtime calls them --------------------------------------------

struct TestHost {
    pg: PostgresInstance,
    my: MysqlInstance,
}

fn pg_of(h: &mut TestHost) -> &mut PostgresInstance {
    &mut h.pg
}

fn my_of(h: &mut TestHost) -> &mut MysqlInstance {
    &mut h.my
}

struct Collect<T> {
    items: Vec<T>,
    done: Option<oneshot::Sender<Vec<T>>>,
}

impl<T: wasmtime::component::Lift + Send + Sync + Unpin + 'static, D> StreamConsumer<D>
    for Collect<T>
{
    type Item = T;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let me = self.get_mut();
        let mut buf = Vec::with_capacity(source.remaining(&mut store));
        source.read(&mut store, &mut buf)?;
        me.items.extend(buf);
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl<T> Drop for Collect<T> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.items));
        }
    }
}

struct Take<T>(Option<oneshot::Sender<T>>);

impl<T: wasmtime::component::Lift + Send + Sync + Unpin + 'static, D> FutureConsumer<D>
    for Take<T>
{
    type Item = T;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        if let (Some(value), Some(tx)) = (value, self.get_mut().0.take()) {
            let _ = tx.send(value);
        }
        Poll::Ready(Ok(()))
    }
}

async fn read_stream<T, D>(acc: &Accessor<TestHost, D>, stream: StreamReader<T>) -> Vec<T>
where
    T: wasmtime::component::Lift + Send + Sync + Unpin + 'static,
    D: wasmtime::component::HasData,
{
    let (tx, rx) = oneshot::channel();
    acc.with(|mut access| {
        stream.pipe(
            &mut access,
            Collect {
                items: Vec::new(),
                done: Some(tx),
            },
        )
    })
    .unwrap();
    rx.await.unwrap()
}

async fn read_future<T, D>(acc: &Accessor<TestHost, D>, future: FutureReader<T>) -> T
where
    T: wasmtime::component::Lift + Send + Sync + Unpin + 'static,
    D: wasmtime::component::HasData,
{
    let (tx, rx) = oneshot::channel();
    acc.with(|mut access| future.pipe(&mut access, Take(Some(tx))))
        .unwrap();
    rx.await.unwrap()
}

type PgData = HasSelf<PostgresInstance>;
type MyData = HasSelf<MysqlInstance>;

#[tokio::test]
async fn async_functions_of_pg_4_2_and_mysql_3() {
    let pg_db = PgDb::new().await;
    let my_db = MyDb::new().await;
    let (_, pg) = pg_instance(&["postgres://127.0.0.1:5432"], CallLimits::default());
    let (_, my) = my_instance(&["mysql://127.0.0.1:3306"], CallLimits::default());
    let mut store = Store::new(&Engine::default(), TestHost { pg, my });
    let (pg_addr, my_addr) = (pg_db.address(), my_db.address());
    store
        .run_concurrent(async |acc| {
            let pga = &acc.with_getter::<PgData>(pg_of);
            let c = PgData::open_async(pga, pg_addr).await.unwrap().unwrap();
            let n = PgData::execute_async(
                pga,
                borrow(&c),
                "CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 5) g".into(),
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(n, 5);
            let (columns, rows, outcome) = PgData::query_async(
                pga,
                borrow(&c),
                "SELECT n FROM t WHERE n > $1 ORDER BY n".into(),
                vec![pg4::ParameterValue::Int32(3)],
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(columns[0].name, "n");
            assert_eq!(
                dbg_of(&read_stream(pga, rows).await),
                dbg_of(&vec![
                    vec![pg4::DbValue::Int32(4)],
                    vec![pg4::DbValue::Int32(5)]
                ])
            );
            assert!(read_future(pga, outcome).await.is_ok());
            acc.with(|mut a| pg4::HostConnection::drop(&mut a.get().pg, c))
                .unwrap();

            let mya = &acc.with_getter::<MyData>(my_of);
            let c = MyData::open(mya, my_addr).await.unwrap().unwrap();
            MyData::execute(mya, borrow(&c), "CREATE TABLE t (n INT)".into(), vec![])
                .await
                .unwrap()
                .unwrap();
            MyData::execute(
                mya,
                borrow(&c),
                "INSERT INTO t VALUES (?), (?)".into(),
                vec![my3::ParameterValue::Int32(7), my3::ParameterValue::Int32(8)],
            )
            .await
            .unwrap()
            .unwrap();
            let (columns, rows, outcome) =
                MyData::query(mya, borrow(&c), "SELECT n FROM t ORDER BY n".into(), vec![])
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(columns[0].name, "n");
            assert_eq!(
                dbg_of(&read_stream(mya, rows).await),
                dbg_of(&vec![
                    vec![my3::DbValue::Int32(7)],
                    vec![my3::DbValue::Int32(8)]
                ])
            );
            assert!(read_future(mya, outcome).await.is_ok());
            acc.with(|mut a| my3::HostConnection::drop(&mut a.get().my, c))
                .unwrap();
        })
        .await
        .unwrap();
}

#[test]
fn nebula_check_says_where_each_database_may_be_reached() {
    let grants = ComponentGrants {
        allowed_outbound_hosts: vec![
            "postgres://127.0.0.1:5432".into(),
            "mysql://127.0.0.1:3306".into(),
            "http://127.0.0.1:*".into(),
        ],
        ..Default::default()
    };
    assert_eq!(
        grants.serves("spin:postgres/postgres@4.2.0").unwrap(),
        "outbound PostgreSQL to allowed_outbound_hosts only: postgres://127.0.0.1:5432"
    );
    assert_eq!(
        grants.serves("fermyon:spin/mysql@2.0.0").unwrap(),
        "outbound MySQL to allowed_outbound_hosts only: mysql://127.0.0.1:3306"
    );
    assert!(grants.serves("fermyon:spin/rdbms-types@2.0.0").is_some());
    assert!(ComponentGrants::default()
        .serves("spin:mysql/mysql@3.0.0")
        .unwrap()
        .contains("none"));
}
