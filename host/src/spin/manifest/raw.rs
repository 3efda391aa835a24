//! spin.toml's shapes as written. Where Spin's own manifest types refuse
//! unknown keys (`deny_unknown_fields` in Spin's `spin-manifest` crate),
//! these do too, so a typo is an error with its line rather than a key
//! Nebula silently skips; the keys Spin knows but Nebula does not act on are
//! read here only to be named in a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::Variable;
use crate::manifest::raw::{RawComponentLimits, RawLimits};

/// Read first, alone, so that a manifest of another version is told so
/// rather than about the keys version 2 does not have.
#[derive(Deserialize)]
pub struct RawVersion {
    pub spin_manifest_version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// Checked by [`RawVersion`] already.
    #[serde(rename = "spin_manifest_version")]
    pub _version: IgnoredAny,
    pub application: RawApplication,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, Spanned<Variable>>,
    #[serde(default)]
    pub trigger: RawTriggers,
    #[serde(default)]
    pub component: BTreeMap<Spanned<String>, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default, rename = "authors")]
    pub _authors: Vec<String>,
    /// `[application.trigger.TYPE]`: settings for every trigger of a type
    /// (`[application.trigger.redis] address` is read; others are named in a
    /// warning).
    #[serde(default)]
    pub trigger: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub tool: RawAppTools,
}

/// `[application.tool.*]`: Spin's place for other tools' settings. Nebula
/// reads its own table and leaves the others alone.
#[derive(Deserialize, Default)]
pub struct RawAppTools {
    pub nebula: Option<RawAppNebula>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppNebula {
    pub limits: Option<RawLimits>,
    pub headers: Option<BTreeMap<String, Spanned<String>>>,
}

/// `[[trigger.TYPE]]`: the HTTP ones in full; of the others, how many there
/// are, for the warning that they are not run.
#[derive(Default)]
pub struct RawTriggers {
    pub http: Vec<Spanned<RawHttpTrigger>>,
    pub redis: Vec<Spanned<RawRedisTrigger>>,
    pub other: BTreeMap<String, usize>,
}

/// One `[[trigger.redis]]`: a channel whose messages a component handles.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisTrigger {
    /// The server; `[application.trigger.redis] address` when absent.
    pub address: Option<Spanned<String>>,
    pub channel: Option<Spanned<String>>,
    pub component: Option<Spanned<RawComponentSpec>>,
    #[serde(default, rename = "id")]
    pub _id: Option<String>,
}

impl<'de> Deserialize<'de> for RawTriggers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Triggers;
        impl<'de> Visitor<'de> for Triggers {
            type Value = RawTriggers;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("[[trigger.TYPE]] tables")
            }

            // Each type's list goes straight to toml's own deserializer, so
            // the HTTP triggers keep their spans.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTriggers, A::Error> {
                let mut triggers = RawTriggers::default();
                while let Some(kind) = map.next_key::<String>()? {
                    if kind == "http" {
                        triggers.http = map.next_value()?;
                    } else if kind == "redis" {
                        triggers.redis = map.next_value()?;
                    } else {
                        let list: Vec<IgnoredAny> = map.next_value()?;
                        triggers.other.insert(kind, list.len());
                    }
                }
                Ok(triggers)
            }
        }
        d.deserialize_map(Triggers)
    }
}

/// One `[[trigger.http]]`: Spin's HTTP trigger refuses other keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpTrigger {
    pub route: Option<Spanned<toml::Value>>,
    pub component: Option<Spanned<RawComponentSpec>>,
    pub executor: Option<Spanned<toml::Value>>,
    #[serde(default, rename = "id")]
    pub _id: Option<String>,
    pub static_response: Option<IgnoredAny>,
    pub components: Option<IgnoredAny>,
}

/// A trigger's `component`: the id of a `[component.ID]`, or the component
/// itself as an inline table.
pub enum RawComponentSpec {
    Id(String),
    Inline(Box<RawComponent>),
}

impl<'de> Deserialize<'de> for RawComponentSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> Visitor<'de> for Spec {
            type Value = RawComponentSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a component id or an inline component table")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawComponentSpec, E> {
                Ok(RawComponentSpec::Id(v.to_string()))
            }

            // Not an untagged enum: serde would buffer the table and lose
            // the spans its limits are checked with.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawComponentSpec, A::Error> {
                let c = RawComponent::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawComponentSpec::Inline(Box::new(c)))
            }
        }
        d.deserialize_any(Spec)
    }
}

/// `[component.ID]`, or an inline component.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub source: Spanned<toml::Value>,
    #[serde(default, rename = "description")]
    pub _description: Option<String>,
    #[serde(default)]
    pub files: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub exclude_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    pub build: Option<RawBuild>,
    #[serde(default)]
    pub tool: RawComponentTools,
    /// `[component.ID.dependencies]`: key (which imports) to source, each
    /// value checked in `super::dependencies` with its span.
    #[serde(default)]
    pub dependencies: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub dependencies_inherit_configuration: Option<Spanned<toml::Value>>,
    /// Keys Spin knows that Nebula does not act on: each is named in a
    /// warning.
    pub ai_models: Option<IgnoredAny>,
    pub allowed_http_hosts: Option<IgnoredAny>,
}

impl RawComponent {
    /// The keys of [`Self`]'s last two fields that were given.
    pub fn unsupported_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("ai_models", self.ai_models.is_some()),
            ("allowed_http_hosts", self.allowed_http_hosts.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
    }
}

/// `[component.ID.tool.*]`, as [`RawAppTools`].
#[derive(Deserialize, Default)]
pub struct RawComponentTools {
    pub nebula: Option<RawComponentNebula>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponentNebula {
    pub limits: Option<RawComponentLimits>,
    pub cross_site: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    /// A command, or a list of them run in turn.
    pub command: Spanned<toml::Value>,
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub watch: Vec<String>,
}
