//! Values across the PostgreSQL boundary: WIT values in, SQL values out.
//!
//! SQLite is loosely typed and the contract's `value` is SQLite's five kinds
//! (null, integer, real, text, blob). PostgreSQL types every parameter and
//! column, so an effect's argument is converted to the type PostgreSQL
//! inferred for its parameter (as SQLite's column affinity would: the text
//! "7" into an integer column is 7), and a column comes back as the kind
//! that holds it: booleans as 0/1 (SQLite has no booleans: `EXISTS (…)`
//! reads the same on both), NUMERIC (what `sum()` of integers gives) as an
//! integer when it is whole, else a real.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use crate::contract::Value;

type BoxError = Box<dyn Error + Sync + Send>;

/// An effect argument, converted to its parameter's type when bound.
#[derive(Debug)]
pub struct PgArg<'a>(pub &'a Value);

impl ToSql for PgArg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError {
            format!(
                "cannot bind {} to a parameter of type {ty}; CAST the parameter in the SQL (e.g. CAST(?1 AS TEXT))",
                kind(self.0)
            )
            .into()
        };
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(n), t) => match *t {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                Type::FLOAT4 => (*n as f32).to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ if is_text(t) => n.to_string().to_sql(ty, out),
                _ => Err(mismatch()),
            },
            (Value::Real(f), t) => match *t {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 if f.fract() == 0.0 => {
                    PgArg(&Value::Integer(*f as i64)).to_sql(ty, out)
                }
                _ if is_text(t) => f.to_string().to_sql(ty, out),
                _ => Err(mismatch()),
            },
            (Value::Text(s), t) => match *t {
                _ if is_text(t) => s.as_str().to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 => match s.trim().parse::<i64>() {
                    Ok(n) => PgArg(&Value::Integer(n)).to_sql(ty, out),
                    Err(_) => Err(mismatch()),
                },
                Type::FLOAT8 | Type::FLOAT4 => match s.trim().parse::<f64>() {
                    Ok(f) => PgArg(&Value::Real(f)).to_sql(ty, out),
                    Err(_) => Err(mismatch()),
                },
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => Err(mismatch()),
            },
            (Value::Blob(b), t) => match *t {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ if is_text(t) => std::str::from_utf8(b)?.to_sql(ty, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(t: &Type) -> bool {
    matches!(
        *t,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

/// Column `i` of `row` as a contract value, or why it cannot be one.
pub fn column(row: &Row, i: usize) -> Result<Value, String> {
    let ty = row.columns()[i].type_();
    let got = |e: tokio_postgres::Error| e.to_string();
    Ok(match *ty {
        Type::BOOL => opt(row.try_get::<_, Option<bool>>(i).map_err(got)?, |b| {
            Value::Integer(b as i64)
        }),
        Type::INT2 => opt(row.try_get::<_, Option<i16>>(i).map_err(got)?, |n| {
            Value::Integer(n.into())
        }),
        Type::INT4 => opt(row.try_get::<_, Option<i32>>(i).map_err(got)?, |n| {
            Value::Integer(n.into())
        }),
        Type::INT8 => opt(row.try_get::<_, Option<i64>>(i).map_err(got)?, Value::Integer),
        Type::OID => opt(row.try_get::<_, Option<u32>>(i).map_err(got)?, |n| {
            Value::Integer(n.into())
        }),
        Type::FLOAT4 => opt(row.try_get::<_, Option<f32>>(i).map_err(got)?, |f| {
            Value::Real(f.into())
        }),
        Type::FLOAT8 => opt(row.try_get::<_, Option<f64>>(i).map_err(got)?, Value::Real),
        Type::NUMERIC => opt(row.try_get::<_, Option<Numeric>>(i).map_err(got)?, |n| n.0),
        Type::BYTEA => opt(row.try_get::<_, Option<Vec<u8>>>(i).map_err(got)?, Value::Blob),
        ref t if is_text(t) => opt(row.try_get::<_, Option<String>>(i).map_err(got)?, Value::Text),
        ref t => {
            return Err(format!(
                "column {:?} has type {t}, which a component cannot receive; CAST it to TEXT, INTEGER or REAL in the SQL",
                row.columns()[i].name()
            ))
        }
    })
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

/// A NUMERIC decoded from PostgreSQL's binary form: base-10000 digits with
/// a weight and a sign. Whole values that fit are integers, others reals.
struct Numeric(Value);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let word = |at: usize| -> Result<u16, BoxError> {
            raw.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "truncated NUMERIC".into())
        };
        let ndigits = word(0)? as usize;
        let weight = word(2)? as i16 as i32;
        let sign = word(4)?;
        if sign == 0xC000 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        // Exactly, while it fits; as a float always (for what does not).
        let mut whole: Option<i128> = Some(0);
        let mut float = 0.0f64;
        let mut fractional = false;
        for d in 0..ndigits {
            let digit = word(8 + 2 * d)?;
            let power = weight - d as i32;
            float += f64::from(digit) * 10_000f64.powi(power);
            if power < 0 {
                fractional |= digit != 0;
            } else {
                whole = whole.and_then(|w| {
                    10_000i128
                        .checked_pow(power as u32)
                        .and_then(|p| i128::from(digit).checked_mul(p))
                        .and_then(|v| w.checked_add(v))
                });
            }
        }
        let negative = sign == 0x4000;
        let value = match whole.and_then(|w| i64::try_from(w).ok()) {
            Some(n) if !fractional => Value::Integer(if negative { -n } else { n }),
            _ => Value::Real(if negative { -float } else { float }),
        };
        Ok(Numeric(value))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}
