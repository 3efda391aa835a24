//! The interface's operations on a connection, as Spin runs them (same commands, same
//! errors), each bounded by the component's deadline and result cap.

use redis::aio::MultiplexedConnection;
use redis::Value;

/// One operation of the interface (both versions have the same ones).
pub(crate) enum Op {
    Publish(String, Vec<u8>),
    Get(String),
    Set(String, Vec<u8>),
    Incr(String),
    Del(Vec<String>),
    Sadd(String, Vec<String>),
    Smembers(String),
    Srem(String, Vec<String>),
    Execute(String, Vec<Param>),
}

/// What an [`Op`] returns.
pub(crate) enum Out {
    Done,
    Value(Option<Vec<u8>>),
    Int(i64),
    Count(u32),
    Members(Vec<String>),
    Results(Vec<Res>),
}

/// `redis-parameter`.
pub(crate) enum Param {
    Int64(i64),
    Binary(Vec<u8>),
}

/// `redis-result`.
#[derive(Debug, PartialEq)]
pub(crate) enum Res {
    Nil,
    Status(String),
    Int64(i64),
    Binary(Vec<u8>),
}

/// Commands that change what the connection is (a transaction, a database, a subscription,
/// its name or credentials) or hold it while they wait (blocking pops, `WAIT`): on a shared
/// connection they would reach other requests' commands, so a handle that sends one gets a
/// connection of its own first, as each `open` has in Spin.
const OWN_CONNECTION: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "SWAPDB",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "CLIENT",
    "AUTH",
    "HELLO",
    "RESET",
    "READONLY",
    "READWRITE",
    "QUIT",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "XREAD",
    "XREADGROUP",
    "WAIT",
    "WAITAOF",
    "SYNC",
    "PSYNC",
];

impl Op {
    /// Whether this operation must not run on a connection other requests share.
    pub(crate) fn needs_own_connection(&self) -> bool {
        match self {
            Op::Execute(command, _) => {
                let name = command.split_whitespace().next().unwrap_or_default();
                OWN_CONNECTION.iter().any(|c| c.eq_ignore_ascii_case(name))
            }
            _ => false,
        }
    }

    /// Runs the operation; a result larger than `cap` bytes is refused with `other`.
    pub(crate) async fn run(
        self,
        conn: &mut MultiplexedConnection,
        cap: usize,
    ) -> Result<Out, redis::RedisError> {
        Ok(match self {
            Op::Publish(channel, payload) => {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .exec_async(conn)
                    .await?;
                Out::Done
            }
            Op::Get(key) => Out::Value(get_capped(conn, &key, cap).await?),
            Op::Set(key, value) => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .exec_async(conn)
                    .await?;
                Out::Done
            }
            Op::Incr(key) => Out::Int(
                redis::cmd("INCRBY")
                    .arg(key)
                    .arg(1)
                    .query_async(conn)
                    .await?,
            ),
            Op::Del(keys) => Out::Count(redis::cmd("DEL").arg(keys).query_async(conn).await?),
            Op::Sadd(key, values) => Out::Count(
                redis::cmd("SADD")
                    .arg(key)
                    .arg(values)
                    .query_async(conn)
                    .await?,
            ),
            Op::Smembers(key) => {
                let members: Vec<String> =
                    redis::cmd("SMEMBERS").arg(key).query_async(conn).await?;
                let size: usize = members
                    .iter()
                    .map(|m| m.len() + std::mem::size_of::<String>())
                    .sum();
                if size > cap {
                    return Err(too_large(cap));
                }
                Out::Members(members)
            }
            Op::Srem(key, values) => Out::Count(
                redis::cmd("SREM")
                    .arg(key)
                    .arg(values)
                    .query_async(conn)
                    .await?,
            ),
            Op::Execute(command, params) => {
                let mut cmd = redis::cmd(&command);
                for p in params {
                    match p {
                        Param::Int64(v) => cmd.arg(v),
                        Param::Binary(v) => cmd.arg(v),
                    };
                }
                let value: Value = cmd.query_async(conn).await?;
                let mut results = Vec::new();
                flatten(value, &mut results)?;
                if results.iter().map(Res::size).sum::<usize>() > cap {
                    return Err(too_large(cap));
                }
                Out::Results(results)
            }
        })
    }
}

/// `GET` that never makes the host buffer more than `cap` bytes of a value (a Redis string
/// may hold 512 MiB, and a guest could grow one with `APPEND` far past its own memory): the
/// length, at most `cap` bytes of the value and whether the key exists, in one transaction.
async fn get_capped(
    conn: &mut MultiplexedConnection,
    key: &str,
    cap: usize,
) -> Result<Option<Vec<u8>>, redis::RedisError> {
    let (exists, len, value): (bool, usize, Vec<u8>) = redis::pipe()
        .atomic()
        .cmd("EXISTS")
        .arg(key)
        .cmd("STRLEN")
        .arg(key)
        .cmd("GETRANGE")
        .arg(key)
        .arg(0)
        .arg(cap.saturating_sub(1))
        .query_async(conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    if len > cap {
        return Err(too_large(cap));
    }
    Ok(Some(value))
}

/// The error for a result over the component's cap; Spin's words, with the cap that applied.
fn too_large(cap: usize) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "query result exceeds limit",
        format!(
            "the result is larger than this component may receive ({cap} bytes, its memory limit)"
        ),
    ))
}

impl Res {
    /// Bytes the guest will hold for it.
    fn size(&self) -> usize {
        std::mem::size_of::<Res>()
            + match self {
                Res::Status(s) => s.len(),
                Res::Binary(b) => b.len(),
                Res::Nil | Res::Int64(_) => 0,
            }
    }
}

/// A reply as Spin flattens it: arrays and sets into their elements, in order.
fn flatten(value: Value, out: &mut Vec<Res>) -> Result<(), redis::RedisError> {
    let unsupported = |what: &str| {
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "Could not convert Redis response",
            format!("Redis {what} type is not supported"),
        )))
    };
    match value {
        Value::Nil => out.push(Res::Nil),
        Value::Int(v) => out.push(Res::Int64(v)),
        Value::BulkString(b) => out.push(Res::Binary(b)),
        Value::SimpleString(s) => out.push(Res::Status(s)),
        Value::Okay => out.push(Res::Status("OK".into())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        Value::Double(v) => out.push(Res::Binary(v.to_string().into_bytes())),
        Value::Boolean(v) => out.push(Res::Int64(v as i64)),
        Value::Map(_) => return unsupported("Map"),
        Value::Attribute { .. } => return unsupported("Attribute"),
        Value::VerbatimString { .. } => return unsupported("string with format attribute"),
        Value::Push { .. } => return unsupported("Pub/Sub"),
        Value::ServerError(e) => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "Server error",
                format!("{e:?}"),
            )))
        }
        _ => return unsupported("reply"),
    }
    Ok(())
}
