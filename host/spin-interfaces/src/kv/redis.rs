//! Stores on a Redis server: Spin's `type = "redis"`, so several hosts share them.
//!
//! The layout is Spin's: each key is a Redis string of the same name, in the database the
//! URL selects, and the label plays no part, so every label given one URL shares one
//! keyspace and data written by Spin on Redis reads the same here. One multiplexed
//! connection per URL serves every call (`ConnectionManager` reconnects on its own after an
//! error); it is opened at the first call, as Spin does, so that an app starts while its
//! server is still coming up. Each call waits at most the component's deadline.
//!
//! Nebula keeps no byte quota on Redis (`max_kv_store_bytes` is for the local files): the
//! server's own `maxmemory` bounds what it holds, and a `set` it refuses fails with `other`.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::backend::{keys_fit, other, too_large, within, Call, KvBackend, KvError, KvResult};

const NAME: &str = "Redis";

/// Refuses, in the server, a value larger than the caller may receive, so that the host
/// never buffers one (a Redis string may be 512 MiB): -1 if too large, else the value or nil.
const GET_CAPPED: &str = r"
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return -1 end
return redis.call('GET', KEYS[1])
";

/// Keys asked per `SCAN` round: the server answers each round quickly, where `KEYS *`
/// would hold it for the whole keyspace.
const SCAN_COUNT: usize = 1000;

/// One Redis server (one URL); shared by the labels that name it.
pub(crate) struct RedisBackend {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl RedisBackend {
    /// Checks the URL; connects at the first call.
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(url).map_err(|err| anyhow::anyhow!("not a Redis URL ({err})"))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, KvError> {
        self.conn
            .get_or_try_init(|| self.client.get_connection_manager())
            .await
            .cloned()
            .map_err(other(NAME))
    }
}

#[async_trait]
impl KvBackend for RedisBackend {
    async fn get(&self, call: &Call, _store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        let cap = call.max_result_bytes;
        within(call, NAME, async {
            let mut c = self.conn().await?;
            let v: redis::Value = redis::cmd("EVAL")
                .arg(GET_CAPPED)
                .arg(1)
                .arg(key)
                .arg(cap)
                .query_async(&mut c)
                .await
                .map_err(other(NAME))?;
            match v {
                redis::Value::Nil => Ok(None),
                redis::Value::Int(-1) => Err(too_large(cap)),
                v => redis::from_redis_value::<Vec<u8>>(v)
                    .map(Some)
                    .map_err(other(NAME)),
            }
        })
        .await
    }

    async fn set(&self, call: &Call, _store: &str, key: &str, value: Vec<u8>) -> KvResult<()> {
        within(call, NAME, async {
            let mut c = self.conn().await?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .exec_async(&mut c)
                .await
                .map_err(other(NAME))
        })
        .await
    }

    async fn delete(&self, call: &Call, _store: &str, key: &str) -> KvResult<()> {
        within(call, NAME, async {
            let mut c = self.conn().await?;
            redis::cmd("DEL")
                .arg(key)
                .exec_async(&mut c)
                .await
                .map_err(other(NAME))
        })
        .await
    }

    async fn exists(&self, call: &Call, _store: &str, key: &str) -> KvResult<bool> {
        within(call, NAME, async {
            let mut c = self.conn().await?;
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<bool>(&mut c)
                .await
                .map_err(other(NAME))
        })
        .await
    }

    /// `SCAN` to the end, stopping as soon as the keys pass the cap. A key present the
    /// whole time is listed once; one set or deleted meanwhile may or may not be.
    async fn keys(&self, call: &Call, _store: &str) -> KvResult<Vec<String>> {
        let cap = call.max_result_bytes;
        within(call, NAME, async {
            let mut c = self.conn().await?;
            let mut seen = std::collections::HashSet::new();
            let mut keys = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut c)
                    .await
                    .map_err(other(NAME))?;
                // SCAN may return a key twice (when the table grows during the scan).
                keys.extend(batch.into_iter().filter(|k| seen.insert(k.clone())));
                if !keys_fit(&keys, cap) {
                    return Err(too_large(cap));
                }
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
        .await
    }
}
