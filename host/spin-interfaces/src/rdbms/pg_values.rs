//! PostgreSQL values both ways, with Spin's type mapping (factor-outbound-pg's
//! `types.rs`): the `@4.2.0` WIT types are the unit's own, and the older interfaces'
//! values are converted from and to them as Spin converts them.

use std::error::Error as StdError;

use bytes::{Buf, BufMut, BytesMut};
use chrono::{Datelike, Timelike};
use postgres_protocol::types as proto;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};
use tokio_postgres::Row;

use crate::bindings::fermyon::spin::rdbms_types as v2;
use crate::bindings::spin::postgres3_0_0::postgres as pg3;
use crate::bindings::spin::postgres4_2_0::postgres as pg4;

type BoxError = Box<dyn StdError + Sync + Send>;

/// One guest parameter, ready for the driver.
pub(crate) type Param = Box<dyn ToSql + Send + Sync>;

/// The WIT type of a column, as Spin names PostgreSQL's types.
pub(crate) fn data_type(ty: &Type) -> pg4::DbDataType {
    use pg4::DbDataType as D;
    match *ty {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::UUID => D::Uuid,
        Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(ty.name().to_string()),
    }
}

fn get<'a, T: FromSql<'a>, W>(
    row: &'a Row,
    i: usize,
    wrap: impl FnOnce(T) -> Result<W, BoxError>,
    ctor: impl FnOnce(W) -> pg4::DbValue,
) -> Result<pg4::DbValue, BoxError> {
    Ok(match row.try_get::<_, Option<T>>(i)? {
        Some(v) => ctor(wrap(v)?),
        None => pg4::DbValue::DbNull,
    })
}

fn same<T>(v: T) -> Result<T, BoxError> {
    Ok(v)
}

/// Column `i` of `row` as a WIT value; a type the WIT has no case for is `unsupported`
/// with the server's binary encoding, as in Spin.
pub(crate) fn read(row: &Row, i: usize) -> Result<pg4::DbValue, BoxError> {
    use pg4::DbValue as V;
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::BOOL => get(row, i, same, V::Boolean),
        Type::BYTEA => get(row, i, same, V::Binary),
        Type::FLOAT4 => get(row, i, same, V::Floating32),
        Type::FLOAT8 => get(row, i, same, V::Floating64),
        Type::INT2 => get(row, i, same, V::Int16),
        Type::INT4 => get(row, i, same, V::Int32),
        Type::INT8 => get(row, i, same, V::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, same, V::Str),
        Type::TIMESTAMP => get(row, i, |v: chrono::NaiveDateTime| datetime(v), V::Datetime),
        // Spin reads this as a naive timestamp, which the driver refuses; read as UTC, which
        // is what the WIT says a datetime is.
        Type::TIMESTAMPTZ => get(
            row,
            i,
            |v: chrono::DateTime<chrono::Utc>| datetime(v.naive_utc()),
            V::Datetime,
        ),
        Type::DATE => get(row, i, |d: chrono::NaiveDate| date(d), V::Date),
        Type::TIME => get(row, i, |t: chrono::NaiveTime| time(t), V::Time),
        Type::UUID => get(row, i, |u: uuid::Uuid| Ok(u.to_string()), V::Uuid),
        Type::JSONB => get(
            row,
            i,
            |j: serde_json::Value| Ok(serde_json::to_vec(&j)?),
            V::Jsonb,
        ),
        Type::NUMERIC => get(
            row,
            i,
            |d: rust_decimal::Decimal| Ok(d.to_string()),
            V::Decimal,
        ),
        Type::INT4_RANGE => get(row, i, |r: Range<i32>| Ok(r.into_wit(|v| v)), V::RangeInt32),
        Type::INT8_RANGE => get(row, i, |r: Range<i64>| Ok(r.into_wit(|v| v)), V::RangeInt64),
        Type::NUM_RANGE => get(
            row,
            i,
            |r: Range<rust_decimal::Decimal>| Ok(r.into_wit(|d| d.to_string())),
            V::RangeDecimal,
        ),
        Type::INT4_ARRAY => get(row, i, same, V::ArrayInt32),
        Type::INT8_ARRAY => get(row, i, same, V::ArrayInt64),
        Type::NUMERIC_ARRAY => get(
            row,
            i,
            |a: Vec<Option<rust_decimal::Decimal>>| {
                Ok(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
            },
            V::ArrayDecimal,
        ),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, i, same, V::ArrayStr)
        }
        Type::INTERVAL => get(row, i, |v: Interval| Ok(v.0), V::Interval),
        _ => get(row, i, |v: Raw| Ok(v.0), V::Unsupported),
    }
}

/// Bytes a value takes in the guest, for the result cap.
pub(crate) fn size(value: &pg4::DbValue) -> usize {
    use pg4::DbValue as V;
    let heap = match value {
        V::Str(s) | V::Uuid(s) | V::Decimal(s) => s.len(),
        V::Binary(b) | V::Jsonb(b) | V::Unsupported(b) => b.len(),
        V::RangeDecimal((a, b)) => {
            a.as_ref().map_or(0, |(s, _)| s.len()) + b.as_ref().map_or(0, |(s, _)| s.len())
        }
        V::ArrayInt32(a) => a.len() * 8,
        V::ArrayInt64(a) => a.len() * 16,
        V::ArrayDecimal(a) | V::ArrayStr(a) => a
            .iter()
            .map(|s| std::mem::size_of::<Option<String>>() + s.as_ref().map_or(0, String::len))
            .sum(),
        _ => 0,
    };
    std::mem::size_of::<pg4::DbValue>() + heap
}

/// The WIT's datetime: year, month, day, hour, minute, second, nanosecond.
type WitDatetime = (i32, u8, u8, u8, u8, u8, u32);

fn datetime(v: chrono::NaiveDateTime) -> Result<WitDatetime, BoxError> {
    let (y, mo, d) = date(v.date())?;
    let (h, mi, s, ns) = time(v.time())?;
    Ok((y, mo, d, h, mi, s, ns))
}

fn date(v: chrono::NaiveDate) -> Result<(i32, u8, u8), BoxError> {
    Ok((v.year(), v.month() as u8, v.day() as u8))
}

fn time(v: chrono::NaiveTime) -> Result<(u8, u8, u8, u32), BoxError> {
    Ok((
        v.hour() as u8,
        v.minute() as u8,
        v.second() as u8,
        v.nanosecond(),
    ))
}

/// A guest's parameter for the driver; fails (`bad-parameter`, as in Spin) on a value the
/// WIT type allows but PostgreSQL cannot take: an impossible date, malformed UUID, JSON or
/// decimal.
pub(crate) fn param(value: &pg4::ParameterValue) -> Result<Param, String> {
    use pg4::ParameterValue as P;
    Ok(match value {
        P::Boolean(v) => Box::new(*v),
        P::Int8(v) => Box::new(*v),
        P::Int16(v) => Box::new(*v),
        P::Int32(v) => Box::new(*v),
        P::Int64(v) => Box::new(*v),
        P::Floating32(v) => Box::new(*v),
        P::Floating64(v) => Box::new(*v),
        P::Str(v) => Box::new(v.clone()),
        P::Binary(v) => Box::new(v.clone()),
        P::Date(d) => Box::new(to_date(d)?),
        P::Time(t) => Box::new(to_time(t)?),
        P::Datetime((y, mo, d, h, mi, s, ns)) => Box::new(chrono::NaiveDateTime::new(
            to_date(&(*y, *mo, *d))?,
            to_time(&(*h, *mi, *s, *ns))?,
        )),
        P::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*secs, 0)
                .ok_or_else(|| format!("invalid epoch timestamp {secs}"))?,
        ),
        P::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).map_err(|e| format!("invalid UUID {v}: {e}"))?)
        }
        P::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .map_err(|e| format!("invalid JSON {}: {e}", String::from_utf8_lossy(v)))?,
        ),
        P::Decimal(v) => Box::new(decimal(v)?),
        P::RangeInt32((lo, hi)) => Box::new(Range(*lo, *hi)),
        P::RangeInt64((lo, hi)) => Box::new(Range(*lo, *hi)),
        P::RangeDecimal((lo, hi)) => {
            let bound = |b: &Option<(String, pg4::RangeBoundKind)>| {
                b.as_ref()
                    .map(|(v, k)| decimal(v).map(|d| (d, *k)))
                    .transpose()
            };
            Box::new(Range(bound(lo)?, bound(hi)?))
        }
        P::ArrayInt32(v) => Box::new(v.clone()),
        P::ArrayInt64(v) => Box::new(v.clone()),
        P::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        P::ArrayStr(v) => Box::new(v.clone()),
        P::Interval(v) => Box::new(Interval(*v)),
        P::DbNull => Box::new(Null),
    })
}

fn decimal(v: &str) -> Result<rust_decimal::Decimal, String> {
    rust_decimal::Decimal::from_str_exact(v).map_err(|e| format!("invalid decimal {v}: {e}"))
}

fn to_date((y, mo, d): &(i32, u8, u8)) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::from_ymd_opt(*y, (*mo).into(), (*d).into())
        .ok_or_else(|| format!("invalid date y={y}, m={mo}, d={d}"))
}

fn to_time((h, mi, s, ns): &(u8, u8, u8, u32)) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::from_hms_nano_opt((*h).into(), (*mi).into(), (*s).into(), *ns)
        .ok_or_else(|| format!("invalid time {h}:{mi}:{s}.{ns}"))
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The server's binary encoding of a value the WIT has no case for.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `interval` in its binary form: microseconds, days, months.
#[derive(Debug)]
struct Interval(pg4::Interval);

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, mut raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("unexpected binary format for interval".into());
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(Interval(pg4::Interval {
            micros,
            days,
            months,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

type Bound<T> = Option<(T, pg4::RangeBoundKind)>;

/// A range with its bounds as the WIT has them (`None`: unbounded). PostgreSQL normalises
/// discrete ranges itself (`[a, b)`), so nothing is normalised here; an empty range reads
/// as unbounded on both sides, as in Spin.
#[derive(Debug)]
struct Range<T>(Bound<T>, Bound<T>);

impl<T> Range<T> {
    fn into_wit<U>(self, f: impl Fn(T) -> U) -> (Bound<U>, Bound<U>) {
        (
            self.0.map(|(v, k)| (f(v), k)),
            self.1.map(|(v, k)| (f(v), k)),
        )
    }
}

fn element(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Range(elem) => Some(elem),
        _ => None,
    }
}

fn bound_to_sql<T: ToSql>(
    bound: &Bound<T>,
    elem: &Type,
    buf: &mut BytesMut,
) -> Result<proto::RangeBound<postgres_protocol::IsNull>, BoxError> {
    let Some((value, kind)) = bound else {
        return Ok(proto::RangeBound::Unbounded);
    };
    let null = match value.to_sql(elem, buf)? {
        IsNull::Yes => postgres_protocol::IsNull::Yes,
        IsNull::No => postgres_protocol::IsNull::No,
    };
    Ok(match kind {
        pg4::RangeBoundKind::Inclusive => proto::RangeBound::Inclusive(null),
        pg4::RangeBoundKind::Exclusive => proto::RangeBound::Exclusive(null),
    })
}

impl<T: ToSql> ToSql for Range<T> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let elem = element(ty).ok_or("not a range type")?;
        proto::range_to_sql(
            |buf| bound_to_sql(&self.0, elem, buf),
            |buf| bound_to_sql(&self.1, elem, buf),
            out,
        )?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        element(ty).is_some_and(T::accepts)
    }

    to_sql_checked!();
}

fn bound_from_sql<'a, T: FromSql<'a>>(
    bound: proto::RangeBound<Option<&'a [u8]>>,
    elem: &Type,
) -> Result<Bound<T>, BoxError> {
    let (raw, kind) = match bound {
        proto::RangeBound::Unbounded => return Ok(None),
        proto::RangeBound::Inclusive(raw) => (raw, pg4::RangeBoundKind::Inclusive),
        proto::RangeBound::Exclusive(raw) => (raw, pg4::RangeBoundKind::Exclusive),
    };
    let raw = raw.ok_or("a range bound is NULL")?;
    Ok(Some((T::from_sql(elem, raw)?, kind)))
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Range<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let elem = element(ty).ok_or("not a range type")?;
        match proto::range_from_sql(raw)? {
            proto::Range::Empty => Ok(Range(None, None)),
            proto::Range::Nonempty(lo, hi) => {
                Ok(Range(bound_from_sql(lo, elem)?, bound_from_sql(hi, elem)?))
            }
        }
    }

    fn accepts(ty: &Type) -> bool {
        element(ty).is_some_and(T::accepts)
    }
}

// ---- the older interfaces, converted as Spin converts them ----------------------------------

impl From<pg3::ParameterValue> for pg4::ParameterValue {
    fn from(v: pg3::ParameterValue) -> Self {
        use pg3::ParameterValue as P;
        match v {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::Date(v) => Self::Date(v),
            P::Time(v) => Self::Time(v),
            P::Datetime(v) => Self::Datetime(v),
            P::Timestamp(v) => Self::Timestamp(v),
            P::DbNull => Self::DbNull,
        }
    }
}

/// `fermyon:spin/postgres@2.0.0` shares its parameter type with MySQL, whose unsigned
/// integers PostgreSQL has no type for: `value-conversion-failed`, as in Spin.
pub(crate) fn from_v2(v: v2::ParameterValue) -> Result<pg4::ParameterValue, v2::Error> {
    use pg4::ParameterValue as P4;
    use v2::ParameterValue as P;
    Ok(match v {
        P::Boolean(v) => P4::Boolean(v),
        P::Int8(v) => P4::Int8(v),
        P::Int16(v) => P4::Int16(v),
        P::Int32(v) => P4::Int32(v),
        P::Int64(v) => P4::Int64(v),
        P::Floating32(v) => P4::Floating32(v),
        P::Floating64(v) => P4::Floating64(v),
        P::Str(v) => P4::Str(v),
        P::Binary(v) => P4::Binary(v),
        P::DbNull => P4::DbNull,
        P::Uint8(_) | P::Uint16(_) | P::Uint32(_) | P::Uint64(_) => {
            return Err(v2::Error::ValueConversionFailed(
                "Postgres does not support unsigned integers".into(),
            ))
        }
    })
}

fn error_text(e: pg4::QueryError) -> String {
    match e {
        pg4::QueryError::Text(t) => t,
        pg4::QueryError::DbError(e) => e.as_text,
    }
}

impl From<pg4::Error> for pg3::Error {
    fn from(e: pg4::Error) -> Self {
        match e {
            pg4::Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            pg4::Error::BadParameter(m) => Self::BadParameter(m),
            pg4::Error::QueryFailed(q) => Self::QueryFailed(error_text(q)),
            pg4::Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            pg4::Error::Other(m) => Self::Other(m),
        }
    }
}

impl From<pg4::Error> for v2::Error {
    fn from(e: pg4::Error) -> Self {
        match e {
            pg4::Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            pg4::Error::BadParameter(m) => Self::BadParameter(m),
            pg4::Error::QueryFailed(q) => Self::QueryFailed(error_text(q)),
            pg4::Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            pg4::Error::Other(m) => Self::Other(m),
        }
    }
}

impl From<pg4::DbValue> for pg3::DbValue {
    fn from(v: pg4::DbValue) -> Self {
        use pg4::DbValue as V;
        match v {
            V::Boolean(v) => Self::Boolean(v),
            V::Int8(v) => Self::Int8(v),
            V::Int16(v) => Self::Int16(v),
            V::Int32(v) => Self::Int32(v),
            V::Int64(v) => Self::Int64(v),
            V::Floating32(v) => Self::Floating32(v),
            V::Floating64(v) => Self::Floating64(v),
            V::Str(v) => Self::Str(v),
            V::Binary(v) => Self::Binary(v),
            V::Date(v) => Self::Date(v),
            V::Time(v) => Self::Time(v),
            V::Datetime(v) => Self::Datetime(v),
            V::Timestamp(v) => Self::Timestamp(v),
            V::DbNull => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<pg4::DbValue> for v2::DbValue {
    fn from(v: pg4::DbValue) -> Self {
        use pg4::DbValue as V;
        match v {
            V::Boolean(v) => Self::Boolean(v),
            V::Int8(v) => Self::Int8(v),
            V::Int16(v) => Self::Int16(v),
            V::Int32(v) => Self::Int32(v),
            V::Int64(v) => Self::Int64(v),
            V::Floating32(v) => Self::Floating32(v),
            V::Floating64(v) => Self::Floating64(v),
            V::Str(v) => Self::Str(v),
            V::Binary(v) => Self::Binary(v),
            V::DbNull => Self::DbNull,
            _ => Self::Unsupported,
        }
    }
}

impl From<pg4::Column> for pg3::Column {
    fn from(c: pg4::Column) -> Self {
        use pg3::DbDataType as D3;
        use pg4::DbDataType as D;
        let data_type = match c.data_type {
            D::Boolean => D3::Boolean,
            D::Int8 => D3::Int8,
            D::Int16 => D3::Int16,
            D::Int32 => D3::Int32,
            D::Int64 => D3::Int64,
            D::Floating32 => D3::Floating32,
            D::Floating64 => D3::Floating64,
            D::Str => D3::Str,
            D::Binary => D3::Binary,
            D::Date => D3::Date,
            D::Time => D3::Time,
            D::Datetime => D3::Datetime,
            D::Timestamp => D3::Timestamp,
            _ => D3::Other,
        };
        Self {
            name: c.name,
            data_type,
        }
    }
}

impl From<pg4::Column> for v2::Column {
    fn from(c: pg4::Column) -> Self {
        use pg4::DbDataType as D;
        use v2::DbDataType as D2;
        let data_type = match c.data_type {
            D::Boolean => D2::Boolean,
            D::Int8 => D2::Int8,
            D::Int16 => D2::Int16,
            D::Int32 => D2::Int32,
            D::Int64 => D2::Int64,
            D::Floating32 => D2::Floating32,
            D::Floating64 => D2::Floating64,
            D::Str => D2::Str,
            D::Binary => D2::Binary,
            _ => D2::Other,
        };
        Self {
            name: c.name,
            data_type,
        }
    }
}

impl From<pg4::RowSet> for pg3::RowSet {
    fn from(r: pg4::RowSet) -> Self {
        Self {
            columns: r.columns.into_iter().map(Into::into).collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

impl From<pg4::RowSet> for v2::RowSet {
    fn from(r: pg4::RowSet) -> Self {
        Self {
            columns: r.columns.into_iter().map(Into::into).collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}
