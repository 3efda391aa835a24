//! What a guest's SQL may do on its connection: everything an application does with its own
//! database (tables, indexes, views, triggers, transactions, full-text tables, reading the
//! schema), and nothing that reaches another file or changes the process.
//!
//! SQLite's authorizer is asked at every step of compiling a statement. It is an allow-list:
//! an action it does not know — among them `ATTACH` whose file name is a bound parameter or
//! an expression, which SQLite reports without a name — is denied. `ATTACH` is refused in
//! every form, and the connection's limit on attached databases is 0 as well, so even an
//! action the authorizer misjudged cannot attach a file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;

/// Pragmas that take an argument but only read (what ORMs use to inspect a schema); they
/// leave the connection as it was.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Pragmas a guest may set: settings of its own connection, or maintenance of the granted
/// file. Not here, so refused: those that name other files (`temp_store_directory`,
/// `data_store_directory`), change the process (`soft_heap_limit`, `hard_heap_limit`,
/// `threads`), or can corrupt or lock the shared file (`writable_schema`, `schema_version`,
/// `locking_mode`, `mmap_size`, `journal_mode` other than WAL).
const SETTABLE_PRAGMAS: &[&str] = &[
    "analysis_limit",
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "case_sensitive_like",
    "cell_size_check",
    "defer_foreign_keys",
    "foreign_keys",
    "ignore_check_constraints",
    "incremental_vacuum",
    "legacy_alter_table",
    "optimize",
    "page_size",
    "query_only",
    "recursive_triggers",
    "reverse_unordered_selects",
    "secure_delete",
    "synchronous",
    "temp_store",
    "user_version",
    "wal_autocheckpoint",
    "wal_checkpoint",
];

/// State shared by a connection's authorizer and the code running its statements.
#[derive(Default)]
pub(crate) struct Policy {
    /// Set when a statement changes per-connection state (temporary objects, pragmas), so
    /// that the connection is closed rather than handed to the next request.
    pub(crate) dirty: AtomicBool,
    /// Set while the host runs a plain `VACUUM`, which rebuilds the file through an ATTACH
    /// of a private temporary database (file name `''`): the one ATTACH allowed.
    vacuum: AtomicBool,
    /// Why the authorizer last refused something, for the guest's error message (SQLite's
    /// own is only "not authorized").
    refused: Mutex<Option<String>>,
}

impl Policy {
    /// Puts the policy on a freshly opened connection; the host's own setup comes first.
    pub(crate) fn install(conn: &rusqlite::Connection) -> rusqlite::Result<Arc<Policy>> {
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        // Defensive mode: no writable_schema, no direct writes to shadow tables.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        let policy = Arc::new(Policy::default());
        let p = policy.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| p.authorize(&ctx)));
        Ok(policy)
    }

    /// Runs `f` (one statement) with the plain-VACUUM exception on if `sql` is exactly a plain
    /// `VACUUM`; text and not parsing, so nothing else can get it.
    pub(crate) fn statement<R>(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        f: impl FnOnce() -> R,
    ) -> R {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let plain_vacuum = is_plain_vacuum(sql);
        if plain_vacuum && conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1).is_ok() {
            self.vacuum.store(true, Ordering::Relaxed);
        }
        let r = f();
        if plain_vacuum {
            self.vacuum.store(false, Ordering::Relaxed);
            // Were this to fail the connection would keep one attach slot; close it instead.
            if conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).is_err() {
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    /// The reason for the last refusal during the current statement, if any.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn deny(&self, why: String) -> Authorization {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        Authorization::Deny
    }

    fn dirty(&self) -> Authorization {
        self.dirty.store(true, Ordering::Relaxed);
        Authorization::Allow
    }

    fn authorize(&self, ctx: &AuthContext<'_>) -> Authorization {
        use AuthAction as A;
        match ctx.action {
            A::Attach { filename: "" } if self.vacuum.load(Ordering::Relaxed) => {
                Authorization::Allow
            }
            A::Attach { .. } | A::Detach { .. } => self.deny(
                "ATTACH is not allowed: a Spin component reaches only the databases it was \
                 granted (sqlite_databases), each through its own connection"
                    .into(),
            ),
            A::Pragma { pragma_name, .. } if READ_ONLY_PRAGMAS.contains(&pragma_name) => {
                Authorization::Allow
            }
            // Reading a setting changes nothing.
            A::Pragma {
                pragma_value: None, ..
            } => Authorization::Allow,
            A::Pragma {
                pragma_name,
                pragma_value: Some(value),
            } => {
                let wal = pragma_name == "journal_mode" && value.eq_ignore_ascii_case("wal");
                if wal || SETTABLE_PRAGMAS.contains(&pragma_name) {
                    self.dirty()
                } else {
                    self.deny(format!(
                        "PRAGMA {pragma_name} = … is not allowed: it could reach files or state \
                         beyond the granted database; a component may set {}, and \
                         journal_mode = WAL",
                        SETTABLE_PRAGMAS.join(", ")
                    ))
                }
            }
            A::Function {
                function_name: "load_extension",
            } => self.deny("load_extension is not allowed".into()),
            A::CreateTempIndex { .. }
            | A::CreateTempTable { .. }
            | A::CreateTempTrigger { .. }
            | A::CreateTempView { .. }
            | A::DropTempIndex { .. }
            | A::DropTempTable { .. }
            | A::DropTempTrigger { .. }
            | A::DropTempView { .. } => self.dirty(),
            A::Read { .. } | A::Select | A::Function { .. } | A::Recursive => Authorization::Allow,
            A::Insert { .. }
            | A::Update { .. }
            | A::Delete { .. }
            | A::CreateIndex { .. }
            | A::CreateTable { .. }
            | A::CreateTrigger { .. }
            | A::CreateView { .. }
            | A::CreateVtable { .. }
            | A::DropIndex { .. }
            | A::DropTable { .. }
            | A::DropTrigger { .. }
            | A::DropView { .. }
            | A::DropVtable { .. }
            | A::AlterTable { .. }
            | A::Reindex { .. }
            | A::Analyze { .. }
            | A::Transaction { .. }
            | A::Savepoint { .. } => {
                if ctx.database_name == Some("temp") {
                    self.dirty()
                } else {
                    Authorization::Allow
                }
            }
            // Whatever is not listed, including an ATTACH SQLite could not name a file for.
            _ => self.deny(format!(
                "this statement is not allowed for Spin components (SQLite authorizer action \
                 {:?})",
                ctx.action
            )),
        }
    }
}

/// `VACUUM` or `VACUUM main`, any case, with or without a final `;`.
fn is_plain_vacuum(sql: &str) -> bool {
    let words: Vec<&str> = sql
        .trim()
        .trim_end_matches(';')
        .split_ascii_whitespace()
        .collect();
    match words.as_slice() {
        [v] => v.eq_ignore_ascii_case("vacuum"),
        [v, m] => v.eq_ignore_ascii_case("vacuum") && m.eq_ignore_ascii_case("main"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_plain_vacuum_is_one() {
        for sql in ["VACUUM", "vacuum;", "  Vacuum main ; ", "VACUUM\nmain"] {
            assert!(super::is_plain_vacuum(sql), "{sql:?}");
        }
        for sql in [
            "VACUUM INTO 'x'",
            "VACUUM main INTO 'x'",
            "VACUUM temp",
            "VACUUM; ATTACH 'x' AS y",
            "SELECT 1",
            "VACUUMX",
        ] {
            assert!(!super::is_plain_vacuum(sql), "{sql:?}");
        }
    }
}
