//! Which tables each declared read reads and each write writes (learnt from
//! the database itself at start), and a version per table that a commit
//! bumps: what lets the response cache (`crate::memo`) know that a route's
//! data changed without reading it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::manifest::Read;

/// The tables one statement touches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tables {
    /// Lower-case table names.
    Known(Vec<String>),
    /// The database could not say (a statement it would not explain): a
    /// read is then never cached and a write counts as writing everything.
    Unknown,
}

/// Every declared read's and write's tables, by manifest name.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    pub reads: BTreeMap<String, Tables>,
    pub writes: BTreeMap<String, Tables>,
}

/// One version per table the app's statements touch, and a generation for
/// everything at once.
///
/// The generation is part of every cache key: it changes when versions
/// cannot be trusted any more (a write of unknown tables, a node that may
/// have missed a notification, a restart of a store whose versions live
/// only in memory), which makes every earlier key unreachable.
pub struct TableVersions {
    generation: AtomicU64,
    /// Whether the versions are known to be current: a node that shares
    /// its database with others is not while it cannot hear their commits
    /// (then nothing is served from the cache).
    trusted: AtomicBool,
    /// Sorted by name, fixed at start; the index is the table's id.
    tables: Vec<(String, AtomicU64)>,
    reads: BTreeMap<String, Option<Vec<usize>>>,
    writes: BTreeMap<String, Option<Vec<usize>>>,
}

impl TableVersions {
    /// Versions for `footprint`'s tables, all 0, under `generation`.
    pub fn new(footprint: &Footprint, generation: u64) -> TableVersions {
        let mut names: Vec<&String> = footprint
            .reads
            .values()
            .chain(footprint.writes.values())
            .filter_map(|t| match t {
                Tables::Known(names) => Some(names),
                Tables::Unknown => None,
            })
            .flatten()
            .collect();
        names.sort();
        names.dedup();
        let tables: Vec<(String, AtomicU64)> = names
            .into_iter()
            .map(|n| (n.clone(), AtomicU64::new(0)))
            .collect();
        let ids = |t: &Tables| match t {
            Tables::Known(names) => Some(
                names
                    .iter()
                    .filter_map(|n| tables.binary_search_by(|(t, _)| t.cmp(n)).ok())
                    .collect(),
            ),
            Tables::Unknown => None,
        };
        let reads = footprint
            .reads
            .iter()
            .map(|(k, t)| (k.clone(), ids(t)))
            .collect();
        let writes = footprint
            .writes
            .iter()
            .map(|(k, t)| (k.clone(), ids(t)))
            .collect();
        TableVersions {
            generation: AtomicU64::new(generation),
            trusted: AtomicBool::new(true),
            tables,
            reads,
            writes,
        }
    }

    /// The ids of the tables `reads` touch, sorted and without repeats;
    /// `None` if one of them touches tables nobody could name.
    pub fn tables_read(&self, reads: &[Arc<Read>]) -> Option<Vec<usize>> {
        let mut ids = Vec::new();
        for r in reads {
            ids.extend(self.reads.get(&r.name)?.as_ref()?);
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    pub fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
    }

    /// Every table's name, for a store that keeps a row per table.
    pub fn all_names(&self) -> Vec<&str> {
        self.tables.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The version of table `id`.
    pub fn version(&self, id: usize) -> u64 {
        self.tables[id].1.load(Ordering::Acquire)
    }

    /// After a commit that ran `writes` (manifest names): their tables get
    /// a new version; a write whose tables are unknown starts a new
    /// generation. Called only once the transaction is durable, so a key
    /// made with the new version can only ever be filled with the new data.
    pub fn committed<'a>(&self, writes: impl IntoIterator<Item = &'a str>) {
        for w in writes {
            match self.writes.get(w) {
                Some(Some(ids)) => {
                    for &i in ids {
                        self.tables[i].1.fetch_add(1, Ordering::AcqRel);
                    }
                }
                _ => self.new_generation(),
            }
        }
    }

    /// The tables written by `writes`, by name (for a store that keeps
    /// versions in the database); `None` when one of them is unknown.
    pub fn tables_written<'a>(
        &self,
        writes: impl IntoIterator<Item = &'a str>,
    ) -> Option<Vec<&str>> {
        let mut names = Vec::new();
        for w in writes {
            for &i in self.writes.get(w)?.as_ref()? {
                names.push(self.tables[i].0.as_str());
            }
        }
        names.sort_unstable();
        names.dedup();
        Some(names)
    }

    /// A version another node committed (or this one, read back from the
    /// database): versions only move forward.
    pub fn observe(&self, name: &str, version: u64) {
        if let Ok(i) = self.tables.binary_search_by(|(t, _)| t.as_str().cmp(name)) {
            self.tables[i].1.fetch_max(version, Ordering::AcqRel);
        }
    }

    /// Everything cached so far may be stale: no earlier key matches again.
    pub fn new_generation(&self) {
        self.generation.store(rand::random(), Ordering::Release);
    }
}

/// Table names as the versions know them: lower case (SQL names are
/// case-insensitive), without a schema.
pub fn normalise(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase()
}
