//! Outbound PostgreSQL (`spin_sdk::pg`, `spin:postgres/postgres@4.2.0`, its `-async`
//! functions) and MySQL (`spin_sdk::mysql`, `spin:mysql/mysql@3.0.0`, every function
//! `async`), with every column type their WIT has. `sdk-v5/src/rdbms.rs` is the same
//! through spin-sdk 5.2; keep the two in step.
//!
//! | route                                  | behaviour                                  |
//! |----------------------------------------|--------------------------------------------|
//! | `POST /pg/roundtrip?address=ADDR`      | creates `nebula_every_type` if absent, inserts one row (the body as `rtext`, fixed values in the other columns), reads it back: 200 JSON `{"affected":1,"row":{...}}` |
//! | `GET /pg/denied?address=ADDR`          | opens ADDR: 200 `denied: ERR` or `opened`  |
//! | `POST /mysql/roundtrip?address=ADDR`   | the same for MySQL                         |
//! | `GET /mysql/denied?address=ADDR`       | the same for MySQL                         |
//!
//! A failing interface answers 500 `error: <Debug of the error>`.

use serde_json::{Map, Value as Json, json};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{Method, Request};
use spin_sdk::mysql;
use spin_sdk::pg as pg4;

use crate::Reply;

/// Dispatches `/pg/...` and `/mysql/...`.
pub async fn handle(req: Request) -> Reply {
    let query = req.uri().query().unwrap_or_default().to_string();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let address = crate::query_param(&query, "address").unwrap_or_default();
    let text = match req.into_body().bytes().await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => return crate::text(400, &format!("error reading body: {e:?}")),
    };
    match (method, segments.as_slice()) {
        (Method::POST, ["pg", "roundtrip"]) => reply(pg_roundtrip(&address, text).await),
        (_, ["pg", "denied"]) => match pg4::Connection::open(address).await {
            Ok(_) => crate::text(200, "opened"),
            Err(e) => crate::text(200, &format!("denied: {e:?}")),
        },
        (Method::POST, ["mysql", "roundtrip"]) => reply(mysql_roundtrip(&address, text).await),
        (_, ["mysql", "denied"]) => match mysql::Connection::open(address).await {
            Ok(_) => crate::text(200, "opened"),
            Err(e) => crate::text(200, &format!("denied: {e:?}")),
        },
        _ => crate::text(404, "no such database route"),
    }
}

fn reply(result: Result<Json, String>) -> Reply {
    match result {
        Ok(json) => crate::http_response(200, "application/json", json.to_string()),
        Err(e) => crate::text(500, &format!("error: {e}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- PostgreSQL -----------------------------------------------------------------------------

const PG_TABLE: &str = "CREATE TABLE IF NOT EXISTS nebula_every_type (
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

fn pg_params(text: String) -> Vec<pg4::ParameterValue> {
    use pg4::ParameterValue as P;
    use pg4::RangeBoundKind::{Exclusive, Inclusive};
    vec![
        P::Boolean(true),
        P::Int16(-12345),
        P::Int32(-1234567890),
        P::Int64(-1234567890123456789),
        P::Floating32(1.5),
        P::Floating64(-2.25e100),
        P::Str(text),
        P::Binary(vec![0, 1, 2, 255]),
        P::Date((1901, 1, 2)),
        P::Time((14, 15, 16, 17_000_000)),
        P::Datetime((1999, 7, 12, 4, 3, 2, 1_000_000)),
        P::Timestamp(1_700_000_000),
        P::Uuid("fedcba98-fedc-fedc-fedc-fedcba987654".into()),
        P::Jsonb(br#"{"s":"world","n":234}"#.to_vec()),
        P::Decimal("123456789.123456789".into()),
        P::RangeInt32((Some((30, Exclusive)), Some((40, Inclusive)))),
        P::RangeInt64((Some((123123123123, Inclusive)), None)),
        P::RangeDecimal((
            Some(("1234.56".into(), Exclusive)),
            Some(("4567.8".into(), Inclusive)),
        )),
        P::ArrayInt32(vec![Some(1), None, Some(3)]),
        P::ArrayInt64(vec![Some(40_000_000_000), None]),
        P::ArrayDecimal(vec![Some("100".into()), None, Some("200.5".into())]),
        P::ArrayStr(vec![Some("alice".into()), None, Some("carol".into())]),
        P::Interval(pg4::Interval {
            micros: 123456,
            days: 10,
            months: 200,
        }),
        P::DbNull,
    ]
}

async fn pg_roundtrip(address: &str, text: String) -> Result<Json, String> {
    let conn = pg4::Connection::open(address)
        .await
        .map_err(|e| format!("{e:?}"))?;
    conn.execute(PG_TABLE, Vec::<pg4::ParameterValue>::new())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let placeholders: Vec<String> = (1..=24).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO nebula_every_type ({PG_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    let affected = conn
        .execute(insert, pg_params(text))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let result = conn
        .query(
            format!("SELECT {PG_COLUMNS} FROM nebula_every_type ORDER BY id DESC LIMIT 1"),
            Vec::<pg4::ParameterValue>::new(),
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    let columns = result.columns().to_vec();
    let rows = result.collect().await.map_err(|e| format!("{e:?}"))?;
    let first = rows.first().ok_or("no row came back")?;
    let mut row = Map::new();
    for (i, column) in columns.iter().enumerate() {
        row.insert(column.name.clone(), pg_json(&first[i]));
    }
    Ok(json!({ "affected": affected, "row": row }))
}

fn bound<T>(b: &Option<(T, pg4::RangeBoundKind)>, f: impl Fn(&T) -> Json) -> Json {
    match b {
        None => Json::Null,
        Some((v, pg4::RangeBoundKind::Inclusive)) => json!([f(v), "inclusive"]),
        Some((v, pg4::RangeBoundKind::Exclusive)) => json!([f(v), "exclusive"]),
    }
}

fn pg_json(value: &pg4::DbValue) -> Json {
    use pg4::DbValue as V;
    match value {
        V::Boolean(v) => json!(v),
        V::Int8(v) => json!(v),
        V::Int16(v) => json!(v),
        V::Int32(v) => json!(v),
        V::Int64(v) => json!(v),
        V::Floating32(v) => json!(v),
        V::Floating64(v) => json!(v),
        V::Str(v) | V::Uuid(v) | V::Decimal(v) => json!(v),
        V::Binary(v) => json!(hex(v)),
        V::Date((y, m, d)) => json!(format!("{y:04}-{m:02}-{d:02}")),
        V::Time((h, mi, s, ns)) => json!(format!("{h:02}:{mi:02}:{s:02}.{ns:09}")),
        V::Datetime((y, m, d, h, mi, s, ns)) => {
            json!(format!(
                "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}"
            ))
        }
        V::Timestamp(v) => json!(v),
        V::Jsonb(v) => serde_json::from_slice(v).unwrap_or(Json::Null),
        V::RangeInt32((lo, hi)) => json!([bound(lo, |v| json!(v)), bound(hi, |v| json!(v))]),
        V::RangeInt64((lo, hi)) => json!([bound(lo, |v| json!(v)), bound(hi, |v| json!(v))]),
        V::RangeDecimal((lo, hi)) => json!([bound(lo, |v| json!(v)), bound(hi, |v| json!(v))]),
        V::ArrayInt32(v) => json!(v),
        V::ArrayInt64(v) => json!(v),
        V::ArrayDecimal(v) | V::ArrayStr(v) => json!(v),
        V::Interval(i) => json!({ "months": i.months, "days": i.days, "micros": i.micros }),
        V::DbNull => Json::Null,
        V::Unsupported(_) => json!("unsupported"),
    }
}

// ---- MySQL ----------------------------------------------------------------------------------

const MY_TABLE: &str = "CREATE TABLE IF NOT EXISTS nebula_every_type (
    id INT AUTO_INCREMENT PRIMARY KEY,
    rbool BOOLEAN, ri8 TINYINT, ri16 SMALLINT, ri32 INT, ri64 BIGINT,
    ru8 TINYINT UNSIGNED, ru16 SMALLINT UNSIGNED, ru32 INT UNSIGNED, ru64 BIGINT UNSIGNED,
    rf32 FLOAT, rf64 DOUBLE, rvarchar VARCHAR(100), rtext TEXT, rvarbinary VARBINARY(100),
    rblob BLOB, rnull VARCHAR(10)
)";

const MY_COLUMNS: &str = "rbool, ri8, ri16, ri32, ri64, ru8, ru16, ru32, ru64, rf32, rf64, \
    rvarchar, rtext, rvarbinary, rblob, rnull";

fn my_params(text: String) -> Vec<mysql::ParameterValue> {
    use mysql::ParameterValue as P;
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
        P::Str(text),
        P::Binary(vec![0, 1, 2, 255]),
        P::Binary(vec![9; 4]),
        P::DbNull,
    ]
}

async fn mysql_roundtrip(address: &str, text: String) -> Result<Json, String> {
    let conn = mysql::Connection::open(address)
        .await
        .map_err(|e| format!("{e:?}"))?;
    conn.execute(MY_TABLE, Vec::<mysql::ParameterValue>::new())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let insert = format!(
        "INSERT INTO nebula_every_type ({MY_COLUMNS}) VALUES ({})",
        vec!["?"; 16].join(", ")
    );
    conn.execute(insert, my_params(text))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let result = conn
        .query(
            format!("SELECT {MY_COLUMNS} FROM nebula_every_type ORDER BY id DESC LIMIT 1"),
            Vec::<mysql::ParameterValue>::new(),
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    let columns = result.columns().to_vec();
    let rows = result.collect().await.map_err(|e| format!("{e:?}"))?;
    let first = rows.first().ok_or("no row came back")?;
    let mut row = Map::new();
    for (i, column) in columns.iter().enumerate() {
        row.insert(column.name.clone(), my_json(&first[i]));
    }
    Ok(json!({ "row": row }))
}

fn my_json(value: &mysql::DbValue) -> Json {
    use mysql::DbValue as V;
    match value {
        V::Boolean(v) => json!(v),
        V::Int8(v) => json!(v),
        V::Int16(v) => json!(v),
        V::Int32(v) => json!(v),
        V::Int64(v) => json!(v),
        V::Uint8(v) => json!(v),
        V::Uint16(v) => json!(v),
        V::Uint32(v) => json!(v),
        V::Uint64(v) => json!(v),
        V::Floating32(v) => json!(v),
        V::Floating64(v) => json!(v),
        V::Str(v) => json!(v),
        V::Binary(v) => json!(hex(v)),
        V::DbNull => Json::Null,
        V::Unsupported => json!("unsupported"),
    }
}
