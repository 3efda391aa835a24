//! How a node hears of the other nodes' commits: every write transaction
//! bumps the versions of the tables it wrote in `nebula_table_versions` and
//! sends `NOTIFY nebula_tables` (delivered at commit); each node LISTENs on
//! a connection of its own and moves its versions forward. A node that
//! loses that connection may miss commits, so its versions are untrusted
//! (nothing is served from the response cache) until it has listened again
//! and read every version back.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::data::versions::TableVersions;

pub(super) const CHANNEL: &str = "nebula_tables";

/// Listens while the returned task runs (it is aborted with the store).
/// `None` outside a tokio runtime: then the versions stay untrusted.
pub(super) fn spawn(
    config: tokio_postgres::Config,
    schema: String,
    versions: Arc<TableVersions>,
) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let mut config = config;
    // Its own name in pg_stat_activity, beside the pool's `nebula`.
    config.application_name("nebula-listen");
    Some(runtime.spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = listen(&config, &schema, &versions).await {
                tracing::warn!("table versions: not hearing other nodes' commits ({e}); the response cache is off until the connection is back");
            }
            versions.set_trusted(false);
            if started.elapsed() > Duration::from_secs(10) {
                wait = Duration::from_millis(100);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }))
}

async fn listen(
    config: &tokio_postgres::Config,
    schema: &str,
    versions: &TableVersions,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // From here on no commit goes unheard; those before are read now.
        for row in client
            .query("SELECT name, version FROM nebula_table_versions", &[])
            .await?
        {
            versions.observe(row.get(0), row.get::<_, i64>(1).max(0) as u64);
        }
        versions.set_trusted(true);
        while let Some(message) = rx.recv().await {
            if let Some(changes) = message?
                .strip_prefix(schema)
                .and_then(|r| r.strip_prefix(' '))
            {
                observe(versions, changes);
            }
        }
        Ok(())
    }
    .await;
    driver.abort();
    result
}

/// A notification's "name=version,name=version".
fn observe(versions: &TableVersions, changes: &str) {
    for pair in changes.split(',') {
        if let Some((name, v)) = pair.split_once('=') {
            if let Ok(v) = v.parse::<u64>() {
                versions.observe(name, v);
            }
        }
    }
}
