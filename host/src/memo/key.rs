//! A memoised call's key: everything its output can depend on. A pure
//! component's response is a function of the request it sees, its seed and
//! clock, and the rows its reads give it; on a memoised route the host
//! fixes the seed (from this key) and the clock (to the window), shows the
//! component only the `vary` headers, and the rows are named by the reads'
//! bound values and the versions of the tables they read.

use sha2::{Digest, Sha256};

use crate::data::versions::TableVersions;
use crate::data::ReadPlan;
use crate::executor::Payload;
use crate::manifest::RouteCache;

/// SHA-256 of the inputs: collisions are not a practical concern, and
/// the key is also the `ETag`, which clients may try to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The strong `ETag` of the response: the key itself, so a client's
    /// copy can be confirmed (304) without anything being kept or run.
    pub fn etag(&self) -> String {
        let mut s = String::with_capacity(34);
        s.push('"');
        s.push_str(&hex::encode(&self.0[..16]));
        s.push('"');
        s
    }

    /// The seed the component gets: derived from the key, so the same
    /// inputs give the same output, and different ones (another page,
    /// other data) still get different randomness.
    pub fn seed(&self) -> u64 {
        u64::from_le_bytes(self.0[16..24].try_into().expect("8 bytes"))
    }
}

/// What goes into a key besides the request.
pub struct Inputs<'a> {
    pub route: usize,
    /// The component's identity: its digest, so a swap makes new keys.
    pub component: &'a [u8],
    pub cache: &'a RouteCache,
    pub window_start_ms: u64,
    /// The route's reads bound for this request (with seed 0: a read that
    /// binds the seed gets the key's).
    pub plans: &'a [ReadPlan],
    pub versions: Option<&'a TableVersions>,
    /// The table ids the route's reads read.
    pub tables: &'a [usize],
}

/// The key of `req` on a memoised route.
pub fn key(req: &http::Request<Payload>, inputs: &Inputs<'_>) -> Key {
    let mut h = Sha256::new();
    // Every field is length-prefixed: no two different inputs hash the
    // same bytes.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"nebula memo 1");
    field(&(inputs.route as u64).to_le_bytes());
    field(inputs.component);
    field(req.method().as_str().as_bytes());
    field(req.uri().path().as_bytes());
    field(req.uri().query().unwrap_or("").as_bytes());
    for name in &inputs.cache.vary {
        field(name.as_str().as_bytes());
        let values = req.headers().get_all(name);
        field(&(values.iter().count() as u64).to_le_bytes());
        for v in values {
            field(v.as_bytes());
        }
    }
    field(&inputs.window_start_ms.to_le_bytes());
    for plan in inputs.plans {
        field(plan.read.name.as_bytes());
        for (name, value) in &plan.args {
            field(name.as_bytes());
            match value {
                Some(v) => field(&[&[1u8][..], v.as_bytes()].concat()),
                None => field(&[0]),
            }
        }
    }
    if let Some(v) = inputs.versions {
        field(&v.generation().to_le_bytes());
        for &t in inputs.tables {
            field(&(t as u64).to_le_bytes());
            field(&v.version(t).to_le_bytes());
        }
    }
    Key(h.finalize().into())
}
