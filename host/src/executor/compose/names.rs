//! Dependency keys (`[component.ID.dependencies]`'s left-hand sides) and
//! which of a component's imports each one names, by Spin's rules
//! (`spin-serde`'s `DependencyName`, `spin-compose`'s `matches_import`):
//!
//! | key                 | satisfies the imports                     |
//! |---------------------|-------------------------------------------|
//! | `a:b/c@1.2.3`       | `a:b/c@1.2.3` only                        |
//! | `a:b/c`             | `a:b/c`, at any version or none           |
//! | `a:b@1.2.3`         | every interface of `a:b` at `1.2.3`       |
//! | `a:b`               | every interface of `a:b`                  |
//! | `foo-bar`           | the plain import `foo-bar`                |
//!
//! A version in a key is matched exactly, as Spin does, so a manifest means
//! the same on both hosts; only the dependency's export is looked up
//! semver-compatibly ([`super::find_export`]).

use std::fmt;
use std::str::FromStr;

use semver::Version;

/// A parsed dependency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyName {
    /// `foo-bar`: the import of that plain name.
    Plain(String),
    /// `ns:pkg`, `ns:pkg@1.0.0`, `ns:pkg/iface` or `ns:pkg/iface@1.0.0`.
    Package {
        package: String,
        interface: Option<String>,
        version: Option<Version>,
    },
}

impl DependencyName {
    /// Whether this key satisfies `import` (a name from the component's
    /// type: `ns:pkg/iface@1.0.0`, `ns:pkg/iface` or a plain name).
    pub fn matches(&self, import: &str) -> bool {
        match (self, ImportName::parse(import)) {
            (DependencyName::Plain(a), ImportName::Plain(b)) => a == b,
            (
                DependencyName::Package {
                    package,
                    interface,
                    version,
                },
                ImportName::Interface {
                    package: p,
                    interface: i,
                    version: v,
                },
            ) => {
                package == p
                    && interface.as_deref().is_none_or(|want| want == i)
                    && version
                        .as_ref()
                        .is_none_or(|want| v == Some(want.to_string()))
            }
            _ => false,
        }
    }

    /// The package form (`ns:pkg`, `ns:pkg@1.0.0`): every interface of a
    /// package, which Spin lets no `export` rename.
    pub fn is_whole_package(&self) -> bool {
        matches!(
            self,
            DependencyName::Package {
                interface: None,
                ..
            }
        )
    }
}

impl FromStr for DependencyName {
    type Err = String;

    /// The error says what is wrong with the key, for the manifest's error.
    fn from_str(s: &str) -> Result<Self, String> {
        let forms = "expected an interface (\"ns:pkg/iface\" or \"ns:pkg/iface@1.0.0\"), a package (\"ns:pkg\" or \"ns:pkg@1.0.0\") or a plain import name (\"my-import\")";
        if !s.contains([':', '/', '@']) {
            check_kebab(s).map_err(|m| format!("{m}; {forms}"))?;
            return Ok(DependencyName::Plain(s.to_string()));
        }
        let (name, version) = match s.split_once('@') {
            Some((name, v)) => {
                let version = Version::parse(v).map_err(|e| {
                    format!("{v:?} in {s:?} is not a semantic version such as 1.0.0 ({e}); {forms}")
                })?;
                (name, Some(version))
            }
            None => (s, None),
        };
        let (package, interface) = match name.split_once('/') {
            Some((p, i)) => (p, Some(i)),
            None => (name, None),
        };
        let Some((namespace, pkg)) = package.split_once(':') else {
            return Err(format!(
                "{s:?} has no package namespace (\"ns:pkg\"); {forms}"
            ));
        };
        for word in [namespace, pkg].into_iter().chain(interface) {
            check_kebab(word).map_err(|m| format!("{m} in {s:?}; {forms}"))?;
        }
        Ok(DependencyName::Package {
            package: package.to_string(),
            interface: interface.map(str::to_string),
            version,
        })
    }
}

impl fmt::Display for DependencyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DependencyName::Plain(name) => f.write_str(name),
            DependencyName::Package {
                package,
                interface,
                version,
            } => {
                f.write_str(package)?;
                if let Some(i) = interface {
                    write!(f, "/{i}")?;
                }
                if let Some(v) = version {
                    write!(f, "@{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// A component's import name, split.
enum ImportName<'a> {
    Plain(&'a str),
    Interface {
        package: &'a str,
        interface: &'a str,
        /// As written: compared with a key's version printed back.
        version: Option<String>,
    },
}

impl<'a> ImportName<'a> {
    fn parse(name: &'a str) -> ImportName<'a> {
        let Some((package, rest)) = name.split_once('/') else {
            return ImportName::Plain(name);
        };
        let (interface, version) = match rest.split_once('@') {
            // Normalised, so that `1.0.0` and `1.0.0+build` compare as
            // semver does.
            Some((i, v)) => (
                i,
                Some(Version::parse(v).map_or_else(|_| v.to_string(), |v| v.to_string())),
            ),
            None => (rest, None),
        };
        ImportName::Interface {
            package,
            interface,
            version,
        }
    }
}

/// The interface a name refers to, without its version: `ns:pkg/iface`.
pub fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// A kebab-case word list as the component model names things: words of
/// ASCII letters and digits joined by `-`, each starting with a letter and
/// all lower- or all upper-case.
fn check_kebab(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("found an empty name".into());
    }
    for word in s.split('-') {
        let Some(first) = word.chars().next() else {
            return Err(format!("found an empty word in {s:?}"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "each word of {s:?} must start with a letter, found {first:?}"
            ));
        }
        if let Some(bad) = word.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(format!("found {bad:?} in {s:?}; use kebab-case"));
        }
        let upper = word.chars().any(|c| c.is_ascii_uppercase());
        let lower = word.chars().any(|c| c.is_ascii_lowercase());
        if upper && lower {
            return Err(format!("word {word:?} of {s:?} mixes upper and lower case"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> DependencyName {
        s.parse().unwrap()
    }

    /// Spin's own table (`spin-compose`'s `test_matches_import`), plus the
    /// forms the manifest documents.
    #[test]
    fn keys_match_imports_as_spin_matches_them() {
        for (k, imports) in [
            ("foo:bar/baz@0.1.0", &["foo:bar/baz@0.1.0"][..]),
            ("foo:bar/baz", &["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            (
                "foo:bar",
                &["foo:bar/baz@0.1.0", "foo:bar/baz", "foo:bar/qux@2.0.0"],
            ),
            ("foo:bar@0.1.0", &["foo:bar/baz@0.1.0", "foo:bar/qux@0.1.0"]),
            ("foo-bar", &["foo-bar"]),
        ] {
            for i in imports {
                assert!(key(k).matches(i), "{k} should satisfy {i}");
            }
        }
        for (k, imports) in [
            (
                "foo:bar/baz@0.1.0",
                &["foo:bar/baz", "foo:bar/baz@0.1.1", "foo:bar/baz@0.2.0"][..],
            ),
            (
                "foo:bar/baz",
                &["foo:bar/bub", "foo:bar/bub@0.1.0", "foo:bar/baz-bub"],
            ),
            ("foo:bar", &["foo:bub/bib", "foo:barn/baz", "foo-bar"]),
            ("foo:bar@0.1.0", &["foo:bar/baz", "foo:bar/baz@0.1.1"]),
            ("foo-bar", &["foo:bar/baz", "foo-bars"]),
        ] {
            for i in imports {
                assert!(!key(k).matches(i), "{k} should not satisfy {i}");
            }
        }
    }

    #[test]
    fn keys_print_as_written_and_say_their_form() {
        for k in ["a:b/c@1.2.3", "a:b/c", "a:b@1.2.3", "a:b", "my-import"] {
            assert_eq!(key(k).to_string(), k);
        }
        assert!(key("a:b").is_whole_package());
        assert!(key("a:b@1.0.0").is_whole_package());
        assert!(!key("a:b/c").is_whole_package());
        assert!(!key("my-import").is_whole_package());
    }

    #[test]
    fn a_malformed_key_says_what_is_wrong() {
        for (k, says) in [
            ("a:b/c@1", "is not a semantic version"),
            ("b/c", "no package namespace"),
            ("a:B_c", "found '_'"),
            ("a:b/", "empty name"),
            ("My-Import", "mixes upper and lower case"),
            ("1abc", "must start with a letter"),
        ] {
            let e = k.parse::<DependencyName>().unwrap_err();
            assert!(e.contains(says), "{k}: {e}");
            assert!(e.contains("expected an interface"), "{k}: {e}");
        }
    }
}
