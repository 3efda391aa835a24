//! Tenants and their tokens. A token is shown once, when the tenant is
//! made; the platform keeps only its SHA-256, so a copy of the platform's
//! folder does not hand out anyone's deploy rights.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
}

impl Tenant {
    /// A tenant named `name` with a fresh token: the tenant (holding the
    /// token's hash) and the token.
    pub fn new(name: &str) -> Result<(Tenant, String)> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("tenant name {name:?}: use 1 to 64 letters, digits, '-' or '_'");
        }
        let token = format!("nbt_{}", hex::encode(rand::random::<[u8; 32]>()));
        let tenant = Tenant {
            name: name.to_string(),
            token_sha256: hash(&token),
        };
        Ok((tenant, token))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tenants {
    tenants: Vec<Tenant>,
}

/// The tenants file in a platform's folder.
pub fn file(dir: &Path) -> PathBuf {
    dir.join("tenants.json")
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tenants {
    pub fn load(dir: &Path) -> Result<Tenants> {
        let path = file(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a tenants file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tenants::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn from_list(tenants: Vec<Tenant>) -> Tenants {
        Tenants { tenants }
    }

    /// Adds tenant `name` to the platform in `dir` and returns its token.
    pub fn add(dir: &Path, name: &str) -> Result<String> {
        let (tenant, token) = Tenant::new(name)?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the platform folder {}", dir.display()))?;
        let mut tenants = Tenants::load(dir)?;
        if tenants.tenants.iter().any(|t| t.name == name) {
            bail!("tenant {name:?} exists already in {}", dir.display());
        }
        tenants.tenants.push(tenant);
        super::registry::write_atomically(&file(dir), &serde_json::to_vec_pretty(&tenants)?)?;
        Ok(token)
    }

    /// The tenant a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        let h = hash(token);
        self.tenants
            .iter()
            .find(|t| t.token_sha256 == h)
            .map(|t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_authenticates_its_tenant_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tenants::add(dir.path(), "alice").unwrap();
        let b = Tenants::add(dir.path(), "bob").unwrap();
        let t = Tenants::load(dir.path()).unwrap();
        assert_eq!(t.authenticate(&a), Some("alice"));
        assert_eq!(t.authenticate(&b), Some("bob"));
        assert_eq!(t.authenticate("nbt_wrong"), None);
        let stored = std::fs::read_to_string(file(dir.path())).unwrap();
        assert!(
            !stored.contains(&a) && stored.contains(&hash(&a)),
            "{stored}"
        );
        let again = Tenants::add(dir.path(), "alice").unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        assert!(Tenants::add(dir.path(), "../x").is_err());
    }
}
