//! Host-level visitor sessions (`[session]` in app.toml): the host gives each
//! browser a random visitor id in a signed cookie and offers it to reads
//! (`bind = { x = "session.id" }`) and writes (`:session_id`). Guests never
//! see the cookie or the key, so a guest cannot forge a visitor, and a
//! visitor cannot forge one either: an altered or unsigned cookie is ignored
//! and replaced by a new id.
//!
//! Cookie value: `v1.<id: 32 hex digits>.<HMAC-SHA256(key, id): 64 hex>`.
//! The 32-byte key lives beside the database in `<db>.session-key` (mode
//! 0600, created once), so it stays with the app's data: a copy of the
//! data folder (or a later cluster sharing it) keeps every visitor.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use http::header::{HeaderValue, COOKIE, SET_COOKIE};
use http::HeaderMap;
use sha2::Sha256;

/// `[session]` as the manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The cookie's name (default `nebula_visitor`).
    pub cookie: String,
    /// How long a browser keeps it (default 365 days).
    pub max_age: Duration,
    /// Adds `Secure` (for sites served over HTTPS only; default false, as
    /// `nebula up` itself speaks plain HTTP).
    pub secure: bool,
}

pub const DEFAULT_COOKIE: &str = "nebula_visitor";
pub const DEFAULT_MAX_AGE_DAYS: u64 = 365;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie: DEFAULT_COOKIE.to_string(),
            max_age: Duration::from_secs(DEFAULT_MAX_AGE_DAYS * 86_400),
            secure: false,
        }
    }
}

/// Checks a cookie name: an RFC 6265 token of letters, digits, `_` and `-`.
pub fn check_cookie_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "expected a cookie name of 1 to 64 letters, digits, '_' or '-', found {name:?}"
        ));
    }
    Ok(())
}

/// The sessions of one app: its settings and its signing key.
pub struct Sessions {
    config: SessionConfig,
    key: [u8; 32],
}

/// The visitor of one request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub id: String,
    /// `Set-Cookie` to send when the request had no valid cookie.
    pub set_cookie: Option<HeaderValue>,
}

type HmacSha256 = Hmac<Sha256>;

impl Sessions {
    /// Loads the key kept in the file `key` (the data store's
    /// `host_file("session-key")`: for SQLite `<db>.session-key`), creating
    /// it (0600) on first use.
    pub fn open(config: SessionConfig, key: &Path) -> Result<Sessions> {
        let key = load_or_create_key(key)?;
        Ok(Sessions { config, key })
    }

    /// With a given key; for tests.
    pub fn with_key(config: SessionConfig, key: [u8; 32]) -> Sessions {
        Sessions { config, key }
    }

    /// The request's visitor: the id in its cookie if the signature holds,
    /// else a new random id and the cookie that carries it.
    pub fn visitor(&self, headers: &HeaderMap) -> Visitor {
        if let Some(id) = self.cookie_values(headers).find_map(|v| self.verify(&v)) {
            return Visitor {
                id,
                set_cookie: None,
            };
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let mut cookie = format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            self.config.cookie,
            self.sign(&id),
            self.config.max_age.as_secs()
        );
        if self.config.secure {
            cookie.push_str("; Secure");
        }
        Visitor {
            id,
            set_cookie: HeaderValue::from_str(&cookie).ok(),
        }
    }

    /// Removes the session cookie from the request's `Cookie` headers (other
    /// cookies stay), so the guest never sees it.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(COOKIE) {
            return;
        }
        let kept: Vec<HeaderValue> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                let rest: Vec<&str> = text
                    .split(';')
                    .map(str::trim)
                    .filter(|pair| {
                        let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
                        !pair.is_empty() && name.trim() != self.config.cookie
                    })
                    .collect();
                (!rest.is_empty())
                    .then(|| HeaderValue::from_str(&rest.join("; ")).ok())
                    .flatten()
            })
            .collect();
        headers.remove(COOKIE);
        for v in kept {
            headers.append(COOKIE, v);
        }
    }

    /// Finishes a response: a `Set-Cookie` of the guest's naming the
    /// session cookie is dropped (the guest does not own it), and the
    /// visitor's new cookie, if it got one, is added.
    pub fn keep_session_cookie(&self, headers: &mut HeaderMap, visitor: &Visitor) {
        let prefix = format!("{}=", self.config.cookie);
        if headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(prefix.as_bytes()))
        {
            let kept: Vec<HeaderValue> = headers
                .get_all(SET_COOKIE)
                .iter()
                .filter(|v| !v.as_bytes().starts_with(prefix.as_bytes()))
                .cloned()
                .collect();
            tracing::warn!(
                cookie = %self.config.cookie,
                "dropped the component's Set-Cookie for the host's session cookie"
            );
            headers.remove(SET_COOKIE);
            for v in kept {
                headers.append(SET_COOKIE, v);
            }
        }
        if let Some(c) = &visitor.set_cookie {
            headers.append(SET_COOKIE, c.clone());
        }
    }

    fn cookie_values<'h>(&'h self, headers: &'h HeaderMap) -> impl Iterator<Item = String> + 'h {
        headers.get_all(COOKIE).iter().flat_map(move |v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    (k.trim() == self.config.cookie).then(|| v.trim().to_string())
                })
                .collect::<Vec<_>>()
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    fn sign(&self, id: &str) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        format!("v1.{id}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The id in a cookie value, if its signature is this key's.
    fn verify(&self, value: &str) -> Option<String> {
        let rest = value.strip_prefix("v1.")?;
        let (id, sig) = rest.split_once('.')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let sig = hex::decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        // Constant-time comparison: timing tells nothing about the MAC.
        mac.verify_slice(&sig).ok()?;
        Some(id.to_string())
    }
}

/// Where the key for the database at `db` is kept.
pub fn key_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".session-key");
    db.with_file_name(name)
}

/// Reads the key, or creates it: written to a private temporary file and
/// linked into place, so two starts racing both end with the same key and
/// nobody ever reads half a key.
fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let key: [u8; 32] = rand::random();
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create the session key {}", tmp.display()))?;
            f.write_all(hex::encode(key).as_bytes())?;
            f.sync_all()?;
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(key = %path.display(), "created the session signing key");
                return Ok(key);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the session key {}", path.display()))
            }
        }
    }
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the session key {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "the session key {} can be read or written by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the session key {}", path.display()))?;
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32).with_context(|| {
        format!(
            "the session key {} is not 64 hex digits; delete it to make a new one (every visitor then gets a new id)",
            path.display()
        )
    })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, cookie.parse().unwrap());
        h
    }

    fn cookie_of(v: &Visitor) -> String {
        let set = v.set_cookie.as_ref().unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    }

    #[test]
    fn a_signed_cookie_is_the_same_visitor_and_a_forged_one_a_new_one() {
        let s = Sessions::with_key(SessionConfig::default(), [7; 32]);
        let first = s.visitor(&HeaderMap::new());
        let set = first.set_cookie.as_ref().unwrap().to_str().unwrap();
        assert!(set.starts_with("nebula_visitor=v1."), "{set}");
        for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=31536000"] {
            assert!(set.contains(attr), "{set}");
        }
        let again = s.visitor(&headers(&format!("a=b; {}; c=d", cookie_of(&first))));
        assert_eq!(again.id, first.id);
        assert!(again.set_cookie.is_none());

        // Another id with the old signature, a changed signature, another
        // key's cookie, garbage: each a new visitor with a new cookie.
        let c = cookie_of(&first);
        let sig = c.rsplit('.').next().unwrap();
        let other_id = format!("nebula_visitor=v1.{}.{sig}", "0".repeat(32));
        let flipped = format!(
            "{}{}",
            &c[..c.len() - 1],
            if c.ends_with('0') { '1' } else { '0' }
        );
        let other_key = cookie_of(
            &Sessions::with_key(SessionConfig::default(), [8; 32]).visitor(&HeaderMap::new()),
        );
        for forged in [other_id, flipped, other_key, "nebula_visitor=x".into()] {
            let v = s.visitor(&headers(&forged));
            assert_ne!(v.id, first.id, "{forged}");
            assert!(v.set_cookie.is_some(), "{forged}");
        }
    }

    #[test]
    fn the_guest_sees_other_cookies_but_not_the_session() {
        let s = Sessions::with_key(SessionConfig::default(), [7; 32]);
        let mut h = headers("theme=dark; nebula_visitor=v1.abc.def; lang=en");
        h.append(COOKIE, "nebula_visitor=x".parse().unwrap());
        s.strip(&mut h);
        let left: Vec<_> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["theme=dark; lang=en"]);
    }

    #[test]
    fn the_key_is_created_private_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let a = Sessions::open(SessionConfig::default(), &key_path(&db)).unwrap();
        let path = key_path(&db);
        assert_eq!(path, dir.path().join("app.db.session-key"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Sessions::open(SessionConfig::default(), &key_path(&db)).unwrap();
        assert_eq!(a.key, b.key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Sessions::open(SessionConfig::default(), &key_path(&db))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn cookie_names_are_checked() {
        assert!(check_cookie_name("nebula_visitor").is_ok());
        assert!(check_cookie_name("a b").is_err());
        assert!(check_cookie_name("").is_err());
        assert!(check_cookie_name("x;y").is_err());
    }
}
