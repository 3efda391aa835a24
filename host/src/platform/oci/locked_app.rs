//! Spin's locked app — the layer of media type
//! `application/vnd.fermyon.spin.application.v1+config` that
//! `spin registry push` writes — made into a Nebula bundle: a `spin.toml`
//! that says what the locked app says, beside the components and files its
//! other layers hold. The bundle then takes the path every deploy takes
//! (unpack, `nebula check`, install), so an artifact is judged exactly as
//! the same app's `spin.toml` would be.
//!
//! Only what Spin writes when it pushes is read: components' sources and
//! files by digest (or inline, base64, when small), dependencies when the
//! push did not compose them, variables, triggers and the app's metadata.
//! What Nebula cannot honour (trigger middleware, a host requirement it
//! does not know) is refused by name rather than dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component as PathPart, Path};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::platform::bundle;

/// The host requirement Spin sets when a component calls another through
/// `*.spin.internal`; Nebula chains such calls in process.
const SERVICE_CHAINING: &str = "local_service_chaining";

#[derive(Deserialize)]
struct LockedApp {
    #[serde(default)]
    spin_lock_version: u32,
    #[serde(default)]
    must_understand: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    host_requirements: Map<String, Value>,
    #[serde(default)]
    variables: BTreeMap<String, LockedVariable>,
    #[serde(default)]
    triggers: Vec<LockedTrigger>,
    #[serde(default)]
    components: Vec<LockedComponent>,
}

#[derive(Deserialize)]
struct LockedVariable {
    description: Option<String>,
    default: Option<String>,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
struct LockedTrigger {
    trigger_type: String,
    trigger_config: Value,
    #[serde(default)]
    trigger_dependencies: Map<String, Value>,
}

#[derive(Deserialize)]
struct LockedComponent {
    id: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    source: LockedSource,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<ContentPath>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    dependencies: BTreeMap<String, LockedDependency>,
    #[serde(default)]
    trigger_dependencies: Map<String, Value>,
    #[serde(default)]
    host_requirements: Map<String, Value>,
}

#[derive(Deserialize)]
struct LockedSource {
    #[serde(flatten)]
    content: ContentRef,
}

#[derive(Deserialize)]
struct ContentPath {
    #[serde(flatten)]
    content: ContentRef,
    path: String,
}

#[derive(Deserialize)]
struct ContentRef {
    inline: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize)]
struct LockedDependency {
    source: LockedSource,
    export: Option<String>,
    /// `"All"` or `{"Some": [keys]}`, as Spin's enum serialises.
    inherit: Option<Value>,
}

/// Where the bundle's bytes come from: the artifact's blobs by digest.
pub trait Blobs {
    fn blob(&self, digest: &str) -> Option<&[u8]>;
}

impl Blobs for HashMap<String, bytes::Bytes> {
    fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.get(digest).map(|b| &b[..])
    }
}

/// The bundle (gzipped tarball, `spin.toml` at its root) for the locked
/// app `json`, its contents taken from `blobs`.
pub fn to_bundle(json: &[u8], blobs: &dyn Blobs) -> Result<Vec<u8>> {
    let app: LockedApp =
        serde_json::from_slice(json).context("the artifact's locked app is not Spin's JSON")?;
    if app.spin_lock_version > 1 {
        bail!(
            "the locked app is spin_lock_version {}; Nebula reads versions 0 and 1",
            app.spin_lock_version
        );
    }
    if let Some(m) = app.must_understand.iter().find(|m| {
        !matches!(
            m.as_str(),
            "host_requirements" | "component_host_requirements"
        )
    }) {
        bail!("the locked app must be understood for {m:?}, which Nebula does not know");
    }
    requirements_known("the app", &app.host_requirements)?;

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut doc = toml::Table::new();
    doc.insert("spin_manifest_version".into(), 2.into());
    doc.insert("application".into(), application(&app.metadata)?.into());
    if !app.variables.is_empty() {
        let mut vars = toml::Table::new();
        for (name, v) in &app.variables {
            let mut t = toml::Table::new();
            match &v.default {
                Some(d) => t.insert("default".into(), d.clone().into()),
                None => t.insert("required".into(), true.into()),
            };
            if v.secret {
                t.insert("secret".into(), true.into());
            }
            if let Some(d) = &v.description {
                t.insert("description".into(), d.clone().into());
            }
            vars.insert(name.clone(), t.into());
        }
        doc.insert("variables".into(), vars.into());
    }

    let mut triggers: BTreeMap<String, Vec<toml::Value>> = BTreeMap::new();
    for t in &app.triggers {
        if !t.trigger_dependencies.is_empty() {
            bail!(
                "a {} trigger has trigger dependencies (middleware), which Nebula does not run",
                t.trigger_type
            );
        }
        let config = to_toml(&t.trigger_config)
            .with_context(|| format!("a {} trigger's configuration", t.trigger_type))?;
        triggers
            .entry(t.trigger_type.clone())
            .or_default()
            .push(config);
    }
    let triggers: toml::Table = triggers
        .into_iter()
        .map(|(k, v)| (k, toml::Value::Array(v)))
        .collect();
    doc.insert("trigger".into(), triggers.into());

    let mut components = toml::Table::new();
    for c in &app.components {
        let at = |what: &str| format!("component {:?}: {what}", c.id);
        safe_name(&c.id).with_context(|| at("its id"))?;
        requirements_known(&at("it"), &c.host_requirements)?;
        if !c.trigger_dependencies.is_empty() {
            bail!(
                "{}",
                at("has trigger dependencies (middleware), which Nebula does not run")
            );
        }
        let mut t = toml::Table::new();
        let source = format!("wasm/{}.wasm", c.id);
        files.push((
            source.clone(),
            content(&c.source.content, blobs).with_context(|| at("its source"))?,
        ));
        t.insert("source".into(), source.into());
        if !c.files.is_empty() {
            let root = format!("files/{}", c.id);
            for f in &c.files {
                let rel = relative(&f.path).with_context(|| at(&format!("file {:?}", f.path)))?;
                let bytes = content(&f.content, blobs)
                    .with_context(|| at(&format!("file {:?}", f.path)))?;
                files.push((format!("{root}/{rel}"), bytes));
            }
            let mut mount = toml::Table::new();
            mount.insert("source".into(), root.into());
            mount.insert("destination".into(), "/".into());
            t.insert("files".into(), toml::Value::Array(vec![mount.into()]));
        }
        if !c.env.is_empty() {
            t.insert("environment".into(), string_table(&c.env).into());
        }
        if !c.config.is_empty() {
            t.insert("variables".into(), string_table(&c.config).into());
        }
        for (from, to) in [
            ("description", "description"),
            ("allowed_outbound_hosts", "allowed_outbound_hosts"),
            ("key_value_stores", "key_value_stores"),
            ("databases", "sqlite_databases"),
            ("ai_models", "ai_models"),
        ] {
            match c.metadata.get(from) {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    t.insert(to.into(), to_toml(v).with_context(|| at(from))?);
                }
            }
        }
        if !c.dependencies.is_empty() {
            let mut deps = toml::Table::new();
            for (name, d) in &c.dependencies {
                let path = format!("wasm/{}.deps/{}.wasm", c.id, bundle::sanitize(name));
                files.push((
                    path.clone(),
                    content(&d.source.content, blobs)
                        .with_context(|| at(&format!("dependency {name:?}")))?,
                ));
                let mut dt = toml::Table::new();
                dt.insert("path".into(), path.into());
                if let Some(e) = &d.export {
                    dt.insert("export".into(), e.clone().into());
                }
                match &d.inherit {
                    None => {}
                    Some(Value::String(s)) if s == "All" => {
                        dt.insert("inherit_configuration".into(), true.into());
                    }
                    Some(Value::Object(o)) if o.contains_key("Some") => {
                        let keys = to_toml(&o["Some"])
                            .with_context(|| at(&format!("dependency {name:?} inherit")))?;
                        if keys.as_array().is_some_and(|a| !a.is_empty()) {
                            dt.insert("inherit_configuration".into(), keys);
                        }
                    }
                    Some(other) => bail!(
                        "{}",
                        at(&format!("dependency {name:?} inherits {other}, which is not Spin's form (\"All\" or {{\"Some\": [...]}})"))
                    ),
                }
                deps.insert(name.clone(), dt.into());
            }
            t.insert("dependencies".into(), deps.into());
        }
        components.insert(c.id.clone(), t.into());
    }
    doc.insert("component".into(), components.into());

    let manifest = toml::to_string(&doc).context("the spin.toml made from the locked app")?;
    let mut entries: Vec<(&str, &[u8])> = vec![("spin.toml", manifest.as_bytes())];
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    entries.extend(files.iter().map(|(p, b)| (p.as_str(), &b[..])));
    bundle::gz_tar(&entries)
}

/// `[application]` from the locked app's metadata.
fn application(meta: &Map<String, Value>) -> Result<toml::Table> {
    let mut t = toml::Table::new();
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .context("the locked app has no metadata.name")?;
    t.insert("name".into(), name.into());
    for key in ["version", "description"] {
        if let Some(v) = meta.get(key).and_then(Value::as_str) {
            t.insert(key.into(), v.into());
        }
    }
    if let Some(a) = meta.get("authors").filter(|a| a.is_array()) {
        t.insert("authors".into(), to_toml(a)?);
    }
    // Per trigger type, the app-wide options (`[application.trigger.http]
    // base = "/"`); `trigger` (one type, with `type`) repeats them.
    if let Some(Value::Object(types)) = meta.get("triggers") {
        let mut tt = toml::Table::new();
        for (kind, opts) in types {
            if opts.as_object().is_some_and(|o| !o.is_empty()) {
                tt.insert(kind.clone(), to_toml(opts)?);
            }
        }
        if !tt.is_empty() {
            t.insert("trigger".into(), tt.into());
        }
    }
    Ok(t)
}

fn requirements_known(whose: &str, reqs: &Map<String, Value>) -> Result<()> {
    match reqs.keys().find(|k| k.as_str() != SERVICE_CHAINING) {
        Some(k) => bail!("{whose} requires the host feature {k:?}, which Nebula does not have"),
        None => Ok(()),
    }
}

/// A content reference's bytes: inline, or the blob its digest names.
fn content(r: &ContentRef, blobs: &dyn Blobs) -> Result<Vec<u8>> {
    if let Some(inline) = &r.inline {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(inline.trim_end_matches('='))
            .context("its inline content is not base64")?;
        if let Some(d) = &r.digest {
            check_digest(d, &bytes)?;
        }
        return Ok(bytes);
    }
    let Some(digest) = &r.digest else {
        bail!("it has neither inline content nor a digest");
    };
    match blobs.blob(digest) {
        Some(b) => Ok(b.to_vec()),
        None => bail!("its content {digest} is in no layer of the artifact; push it again"),
    }
}

/// Refuses `bytes` unless they hash to `digest` (`sha256:HEX`).
pub fn check_digest(digest: &str, bytes: &[u8]) -> Result<()> {
    let got = sha256_digest(bytes);
    if got != digest {
        bail!("its content hashes to {got}, not to {digest} as the artifact says");
    }
    Ok(())
}

/// `sha256:HEX`, as OCI names content.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    format!("sha256:{hex}")
}

/// A file's mount path as a path under the component's folder.
fn relative(path: &str) -> Result<String> {
    let p = Path::new(path.trim_start_matches('/'));
    let mut parts = Vec::new();
    for part in p.components() {
        match part {
            PathPart::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            PathPart::CurDir => {}
            _ => bail!("the path leaves the component's files"),
        }
    }
    if parts.is_empty() {
        bail!("the path names no file");
    }
    Ok(parts.join("/"))
}

fn safe_name(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{id:?} is not a Spin component id (letters, digits and dashes)");
    }
    Ok(())
}

fn string_table(m: &BTreeMap<String, String>) -> toml::Table {
    m.iter()
        .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
        .collect()
}

/// JSON as TOML; a `null` member is left out (TOML has none).
fn to_toml(v: &Value) -> Result<toml::Value> {
    Ok(match v {
        Value::Null => bail!("null has no TOML form"),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().context("a number out of range")?.into(),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect::<Result<_>>()?),
        Value::Object(o) => {
            let mut t = toml::Table::new();
            for (k, v) in o {
                if !v.is_null() {
                    t.insert(k.clone(), to_toml(v)?);
                }
            }
            t.into()
        }
    })
}

/// The files of Spin's archive layers (`application/vnd.wasm.content.bundle.v1.tar+gzip`,
/// made when an app has many files) by their digest, as the locked app
/// names them.
pub fn archive_files(archive: &[u8], max_bytes: u64) -> Result<HashMap<String, bytes::Bytes>> {
    use std::io::Read;
    let mut out = HashMap::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut total = 0u64;
    for entry in tar
        .entries()
        .context("an archive layer is not a gzipped tarball")?
    {
        let mut entry = entry.context("an archive layer is cut short")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(max_bytes.saturating_sub(total) + 1)
            .read_to_end(&mut bytes)?;
        total += bytes.len() as u64;
        if total > max_bytes {
            bail!("an archive layer unpacks to more than {max_bytes} bytes");
        }
        out.insert(sha256_digest(&bytes), bytes.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(items: &[&[u8]]) -> HashMap<String, bytes::Bytes> {
        items
            .iter()
            .map(|b| (sha256_digest(b), bytes::Bytes::copy_from_slice(b)))
            .collect()
    }

    fn unpacked(bundle: &[u8]) -> BTreeMap<String, Vec<u8>> {
        use std::io::Read;
        let mut out = BTreeMap::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bundle));
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            out.insert(p, b);
        }
        out
    }

    #[test]
    fn a_locked_app_becomes_the_spin_toml_that_says_the_same() {
        let wasm = b"\0asm\x0d\0\x01\0component bytes";
        let page = vec![b'x'; 300];
        let b = blobs(&[wasm, &page]);
        let json = serde_json::json!({
            "spin_lock_version": 1,
            "metadata": {
                "name": "shop", "version": "1.2.0", "authors": ["a <a@b.c>"],
                "triggers": {"http": {"base": "/"}},
                "trigger": {"type": "http", "base": "/"}
            },
            "variables": {"greeting": {"default": "hi"}, "key": {"secret": true}},
            "triggers": [
                {"id": "t1", "trigger_type": "http", "trigger_config": {"component": "web", "route": "/..."}},
                {"id": "t2", "trigger_type": "http", "trigger_config": {"component": "web", "route": {"private": true}}}
            ],
            "components": [{
                "id": "web",
                "metadata": {"allowed_outbound_hosts": ["https://example.com:443"], "databases": ["default"], "key_value_stores": [], "description": null},
                "source": {"content_type": "application/wasm", "digest": sha256_digest(wasm)},
                "env": {"MODE": "prod"},
                "config": {"greeting": "{{ greeting }}"},
                "files": [
                    {"digest": sha256_digest(&page), "path": "index.html"},
                    {"inline": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"tiny"), "digest": sha256_digest(b"tiny"), "path": "/docs/tiny.txt"}
                ]
            }]
        });
        let bundle = to_bundle(json.to_string().as_bytes(), &b).unwrap();
        let files = unpacked(&bundle);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "files/web/docs/tiny.txt",
                "files/web/index.html",
                "spin.toml",
                "wasm/web.wasm"
            ]
        );
        assert_eq!(files["wasm/web.wasm"], wasm);
        assert_eq!(files["files/web/index.html"], page);
        assert_eq!(files["files/web/docs/tiny.txt"], b"tiny");
        let doc: toml::Table = std::str::from_utf8(&files["spin.toml"])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(doc["application"]["name"].as_str(), Some("shop"));
        assert_eq!(
            doc["application"]["trigger"]["http"]["base"].as_str(),
            Some("/")
        );
        assert_eq!(doc["variables"]["key"]["required"].as_bool(), Some(true));
        assert_eq!(doc["variables"]["key"]["secret"].as_bool(), Some(true));
        assert_eq!(doc["variables"]["greeting"]["default"].as_str(), Some("hi"));
        let http = doc["trigger"]["http"].as_array().unwrap();
        assert_eq!(http[0]["route"].as_str(), Some("/..."));
        assert_eq!(http[1]["route"]["private"].as_bool(), Some(true));
        let web = &doc["component"]["web"];
        assert_eq!(web["source"].as_str(), Some("wasm/web.wasm"));
        assert_eq!(web["files"][0]["source"].as_str(), Some("files/web"));
        assert_eq!(web["environment"]["MODE"].as_str(), Some("prod"));
        assert_eq!(
            web["variables"]["greeting"].as_str(),
            Some("{{ greeting }}")
        );
        assert_eq!(web["sqlite_databases"][0].as_str(), Some("default"));
        assert!(web.get("key_value_stores").is_none());
        assert!(web.get("description").is_none());
    }

    #[test]
    fn what_nebula_cannot_honour_or_find_is_refused_by_name() {
        let wasm: &[u8] = b"\0asm";
        let b = blobs(&[wasm]);
        let app = |component: Value, extra: Value| {
            let mut j = serde_json::json!({
                "spin_lock_version": 1,
                "metadata": {"name": "x"},
                "triggers": [],
                "components": [component]
            });
            for (k, v) in extra.as_object().unwrap() {
                j[k] = v.clone();
            }
            j.to_string()
        };
        let ok = serde_json::json!({"id": "c", "source": {"content_type": "application/wasm", "digest": sha256_digest(wasm)}});
        let err = |json: String| format!("{:#}", to_bundle(json.as_bytes(), &b).unwrap_err());

        let missing = serde_json::json!({"id": "c", "source": {"content_type": "application/wasm", "digest": sha256_digest(b"other")}});
        let e = err(app(missing, serde_json::json!({})));
        assert!(
            e.contains("component \"c\"") && e.contains("in no layer"),
            "{e}"
        );

        let e = err(app(
            ok.clone(),
            serde_json::json!({"host_requirements": {"gpu": "required"}}),
        ));
        assert!(e.contains("\"gpu\""), "{e}");

        let mut escaping = ok.clone();
        escaping["files"] = serde_json::json!([{"inline": "eA", "path": "../../etc/passwd"}]);
        let e = err(app(escaping, serde_json::json!({})));
        assert!(e.contains("leaves the component's files"), "{e}");

        let mut lying = ok.clone();
        lying["files"] =
            serde_json::json!([{"inline": "eA", "digest": sha256_digest(b"y"), "path": "a"}]);
        let e = err(app(lying, serde_json::json!({})));
        assert!(e.contains("hashes to"), "{e}");

        let e = err(app(ok.clone(), serde_json::json!({"spin_lock_version": 7})));
        assert!(e.contains("spin_lock_version 7"), "{e}");

        let e = err("{not json".into());
        assert!(e.contains("not Spin's JSON"), "{e}");

        // Service chaining is a requirement Nebula meets.
        to_bundle(
            app(ok, serde_json::json!({"host_requirements": {"local_service_chaining": "required"}, "must_understand": ["host_requirements"]})).as_bytes(),
            &b,
        )
        .unwrap();
    }

    #[test]
    fn archive_layers_give_their_files_by_digest() {
        let archive = bundle::gz_tar(&[("./a.txt", b"alpha"), ("./d/b.txt", b"beta")]).unwrap();
        let files = archive_files(&archive, 1 << 20).unwrap();
        assert_eq!(&files[&sha256_digest(b"alpha")][..], b"alpha");
        assert_eq!(&files[&sha256_digest(b"beta")][..], b"beta");
        let e = archive_files(&archive, 6).unwrap_err();
        assert!(format!("{e:#}").contains("more than 6 bytes"), "{e:#}");
    }
}
