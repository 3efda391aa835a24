//! Which tables each declared statement touches, from PostgreSQL's own
//! planner and catalog: the generic plan of each statement (EXPLAIN of a
//! prepared statement under `plan_cache_mode = force_generic_plan`, so no
//! parameter value folds a scan away) names every relation it scans, views
//! expanded; a write's target is its ModifyTable node. What a plan does not
//! show is taken from the catalog: tables a foreign key's ON DELETE/UPDATE
//! action changes; a target table with triggers makes the write's tables
//! unknown (a trigger's body is code, not a plan), which bumps every table.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::{translate, Translated};
use crate::data::versions::{normalise, Footprint, Tables};
use crate::manifest::Manifest;

pub(super) async fn footprint(client: &Client, manifest: &Manifest) -> Footprint {
    let _ = client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await;
    let mut footprint = Footprint::default();
    for read in manifest.reads.values() {
        let t = match plan(client, &translate(&read.sql)).await {
            Some(p) => Tables::Known(p.scanned.into_iter().collect()),
            None => Tables::Unknown,
        };
        footprint.reads.insert(read.name.clone(), t);
    }
    for write in manifest.writes.values() {
        let t = match plan(client, &translate(&write.sql)).await {
            Some(p) => written(client, p.modified).await,
            None => Tables::Unknown,
        };
        footprint.writes.insert(write.name.clone(), t);
    }
    let _ = client.batch_execute("RESET plan_cache_mode").await;
    footprint
}

struct Plan {
    scanned: BTreeSet<String>,
    modified: BTreeSet<String>,
}

/// The relations of `t`'s generic plan; `None` if it cannot be explained.
async fn plan(client: &Client, t: &Translated) -> Option<Plan> {
    let nulls = vec!["NULL"; t.positional + t.names.len()].join(", ");
    let _ = client.batch_execute("DEALLOCATE nebula_footprint").await;
    client
        .batch_execute(&format!("PREPARE nebula_footprint AS {}", t.sql))
        .await
        .ok()?;
    let execute = if nulls.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE nebula_footprint".to_string()
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE nebula_footprint({nulls})")
    };
    // The simple protocol answers in text: the plan's JSON as written.
    let explained = client.simple_query(&execute).await;
    let _ = client.batch_execute("DEALLOCATE nebula_footprint").await;
    let text = explained.ok()?.into_iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut p = Plan {
        scanned: BTreeSet::new(),
        modified: BTreeSet::new(),
    };
    walk(&json, &mut p);
    Some(p)
}

fn walk(v: &serde_json::Value, p: &mut Plan) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, p)),
        serde_json::Value::Object(node) => {
            if let Some(name) = node.get("Relation Name").and_then(|n| n.as_str()) {
                let set = if node.get("Node Type").and_then(|t| t.as_str()) == Some("ModifyTable") {
                    &mut p.modified
                } else {
                    &mut p.scanned
                };
                set.insert(normalise(name));
            }
            node.values().for_each(|child| walk(child, p));
        }
        _ => {}
    }
}

/// The tables a write with target tables `modified` changes.
async fn written(client: &Client, modified: BTreeSet<String>) -> Tables {
    let mut all = modified.clone();
    for table in &modified {
        let triggers = client
            .query_one(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal",
                &[table],
            )
            .await
            .map(|r| r.get::<_, i64>(0));
        if !matches!(triggers, Ok(0)) {
            return Tables::Unknown;
        }
        // Rows a foreign key's action changes in other tables.
        let Ok(rows) = client
            .query(
                "SELECT conrelid::regclass::text FROM pg_constraint
                 WHERE contype = 'f' AND confrelid = to_regclass($1)
                   AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))",
                &[table],
            )
            .await
        else {
            return Tables::Unknown;
        };
        all.extend(rows.iter().map(|r| normalise(r.get::<_, &str>(0))));
    }
    Tables::Known(all.into_iter().collect())
}
