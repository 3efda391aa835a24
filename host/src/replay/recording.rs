//! The recording file: what one call of a pure component saw and what it
//! answered, as JSON, one file per request named by its request id
//! (`ID.json`). Meant to be read and edited by people too: bodies and blobs
//! are `{"utf8": "…"}` when they are text, `{"base64": "…"}` otherwise;
//! SQL values are `"null"`, `{"integer": 1}`, `{"real": 1.5}`,
//! `{"text": "…"}` or `{"blob": {…}}`.
//!
//! What is left out, so that a recording can be handed around: the
//! `cookie`, `authorization` and `proxy-authorization` request headers
//! (their names are kept in `request.redacted_headers`), and any text value
//! of the data equal to the visitor's session id (replaced by
//! [`SESSION_PLACEHOLDER`]) or to the value of a header left out (replaced
//! by `[NAME header]`). The request body is kept: it is what the
//! component saw (a form's password too), so files are written readable by
//! their owner only.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::contract::{Effect, Table, Value};

/// The format this nebula writes and reads (`"nebula_recording": 1`).
pub const FORMAT: u32 = 1;

/// What a session id in the data is replaced with.
pub const SESSION_PLACEHOLDER: &str = "[session id]";

/// Request headers a recording never holds.
pub const REDACTED_HEADERS: &[&str] = &["cookie", "authorization", "proxy-authorization"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// The format's version, [`FORMAT`].
    pub nebula_recording: u32,
    /// The request id (`x-request-id`), also the file's name.
    pub id: String,
    pub app: AppRef,
    pub component: ComponentRef,
    /// The route's pattern as written in the manifest.
    pub route: String,
    pub request: RecordedRequest,
    pub seed: u64,
    pub now_ms: u64,
    pub limits: RecordedLimits,
    /// The rows of the route's reads, exactly as the component got them
    /// (but for a session id, see the module's notes).
    pub data: Vec<RecordedTable>,
    /// What the call gave.
    pub outcome: Outcome,
    /// What the host answered instead, when it failed after the call (a
    /// write refused, a response over its size limit): status and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_failure: Option<HostFailure>,
}

/// A failure of the host after the component answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFailure {
    pub status: u16,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRef {
    pub name: String,
    /// The manifest the host served from (absolute where it could be made so).
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// Its name in the manifest.
    pub name: String,
    /// Its `.wasm` when the call was made.
    pub path: PathBuf,
    /// The SHA-256 of that file, in hex (absent if it could not be read).
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as the request gave them (not yet percent-decoded).
    pub uri: String,
    /// In order; lower-case names. Values that were not UTF-8 hold U+FFFD,
    /// as the component saw them.
    pub headers: Vec<(String, String)>,
    /// The headers the component saw that the recording leaves out (names only).
    #[serde(default)]
    pub redacted_headers: Vec<String>,
    /// Bound by the route pattern.
    pub params: Vec<(String, String)>,
    pub body: Blob,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLimits {
    pub timeout_ms: u64,
    pub max_memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedTable {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A SQL value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Null,
    Integer(i64),
    Real(#[serde(with = "real")] f64),
    Text(String),
    Blob(Blob),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEffect {
    pub write: String,
    pub args: Vec<Cell>,
}

/// What the call gave: a response, or why there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The component answered (any status, 5xx included).
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Blob,
        /// The writes it asked for (not applied by a replay).
        effects: Vec<RecordedEffect>,
    },
    /// It trapped or panicked: answered 500.
    Trap { message: String },
    /// It ran past its deadline: answered 504.
    Timeout { timeout_ms: u64 },
    /// It returned something that is not valid HTTP: answered 500.
    BadResponse { message: String },
}

impl Outcome {
    /// The status the client got for it.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Response { status, .. } => *status,
            Outcome::Timeout { .. } => 504,
            Outcome::Trap { .. } | Outcome::BadResponse { .. } => 500,
        }
    }

    /// Whether two outcomes are the same answer. A timeout's deadline is
    /// the limit it ran into, not part of the answer.
    pub fn same_as(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Timeout { .. }, Outcome::Timeout { .. }) => true,
            _ => self == other,
        }
    }

    /// One line: `200`, `500, the component trapped`, …
    pub fn summary(&self) -> String {
        match self {
            Outcome::Response { status, .. } => format!("{status}"),
            Outcome::Trap { .. } => "500, the component trapped".into(),
            Outcome::Timeout { timeout_ms } => {
                format!("504, the component ran past its deadline of {timeout_ms} ms")
            }
            Outcome::BadResponse { .. } => "500, the component's response is not valid HTTP".into(),
        }
    }
}

/// Bytes: `{"utf8": "…"}` when they are UTF-8, else `{"base64": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "BlobRepr", into = "BlobRepr")]
pub struct Blob(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum BlobRepr {
    Utf8(String),
    Base64(String),
}

impl From<Blob> for BlobRepr {
    fn from(b: Blob) -> BlobRepr {
        match String::from_utf8(b.0) {
            Ok(s) => BlobRepr::Utf8(s),
            Err(e) => BlobRepr::Base64(base64::encode(e.as_bytes())),
        }
    }
}

impl TryFrom<BlobRepr> for Blob {
    type Error = String;
    fn try_from(r: BlobRepr) -> Result<Blob, String> {
        match r {
            BlobRepr::Utf8(s) => Ok(Blob(s.into_bytes())),
            BlobRepr::Base64(s) => base64::decode(&s).map(Blob),
        }
    }
}

/// A real as a JSON number, or `"NaN"`, `"inf"`, `"-inf"` (JSON has none).
mod real {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Word(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Word(w) => match w.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"NaN\", \"inf\" or \"-inf\", found {other:?}"
                ))),
            },
        }
    }
}

impl Cell {
    pub fn of(v: &Value) -> Cell {
        match v {
            Value::Null => Cell::Null,
            Value::Integer(i) => Cell::Integer(*i),
            Value::Real(r) => Cell::Real(*r),
            Value::Text(t) => Cell::Text(t.clone()),
            Value::Blob(b) => Cell::Blob(Blob(b.clone())),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Integer(i) => Value::Integer(*i),
            Cell::Real(r) => Value::Real(*r),
            Cell::Text(t) => Value::Text(t.clone()),
            Cell::Blob(b) => Value::Blob(b.0.clone()),
        }
    }
}

impl RecordedTable {
    /// `t` as recorded, with every text value equal to one of `secrets`
    /// (value, placeholder) replaced by its placeholder: the session id
    /// ([`SESSION_PLACEHOLDER`]) and the values of the headers left out
    /// (a read may select what it bound).
    pub fn of(t: &Table, secrets: &[(String, String)]) -> RecordedTable {
        let cell = |v: &Value| match v {
            Value::Text(s) => match secrets.iter().find(|(secret, _)| secret == s) {
                Some((_, placeholder)) => Cell::Text(placeholder.clone()),
                None => Cell::Text(s.clone()),
            },
            _ => Cell::of(v),
        };
        RecordedTable {
            name: t.name.clone(),
            columns: t.columns.clone(),
            rows: t
                .rows
                .iter()
                .map(|r| r.iter().map(cell).collect())
                .collect(),
        }
    }

    pub fn to_table(&self) -> Table {
        Table {
            name: self.name.clone(),
            columns: self.columns.clone(),
            rows: self
                .rows
                .iter()
                .map(|r| r.iter().map(Cell::to_value).collect())
                .collect(),
        }
    }
}

impl RecordedEffect {
    pub fn of(e: &Effect) -> RecordedEffect {
        RecordedEffect {
            write: e.write.clone(),
            args: e.args.iter().map(Cell::of).collect(),
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Integer(i) => write!(f, "{i}"),
            Cell::Real(r) => write!(f, "{r}"),
            Cell::Text(t) => write!(f, "{t:?}"),
            Cell::Blob(b) => write!(f, "<{} bytes>", b.0.len()),
        }
    }
}

impl Recording {
    /// The file name of the recording of request `id`: `ID.json`, with
    /// anything but letters, digits, `-` and `_` made `_`.
    pub fn file_name(id: &str) -> String {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}.json")
    }

    /// Writes the recording into `dir` (made if missing) as `ID.json`:
    /// first to a temporary file beside it, then renamed, so a reader never
    /// sees half a recording. Readable by its owner only.
    pub fn write_into(&self, dir: &Path) -> Result<PathBuf> {
        use std::io::Write as _;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the recordings folder {}", dir.display()))?;
        let name = Recording::file_name(&self.id);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let text = serde_json::to_vec_pretty(self).context("cannot serialise the recording")?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let written = opts.open(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.write_all(b"\n")
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        Ok(path)
    }

    /// Reads a recording, with an error that names the file and what is
    /// wrong with it (not JSON, not a recording, a newer format, a missing
    /// or mistyped field and its line).
    pub fn read(file: &Path) -> Result<Recording> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the recording {}", file.display()))?;
        Recording::parse(&text).with_context(|| format!("{}", file.display()))
    }

    /// [`Recording::read`] of text already read.
    pub fn parse(text: &str) -> Result<Recording> {
        const HINT: &str =
            "recordings are written by `nebula up --record DIR` or a route's `record` key";
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("not a Nebula recording: it is not JSON ({e}); {HINT}"))?;
        let Some(version) = value.get("nebula_recording") else {
            bail!("not a Nebula recording: it has no \"nebula_recording\" field; {HINT}");
        };
        match version.as_u64() {
            Some(v) if v == u64::from(FORMAT) => {}
            Some(v) if v > u64::from(FORMAT) => bail!(
                "recording format {v} was written by a newer nebula; this one reads format {FORMAT}"
            ),
            _ => bail!("\"nebula_recording\" is {version}, expected {FORMAT}"),
        }
        let recording: Recording = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("not a valid recording: {e}"))?;
        Ok(recording)
    }
}

/// Standard base64 (RFC 4648, with padding); small enough not to need a crate.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let text = text.trim_end_matches('=');
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0u32);
        for (i, c) in text.bytes().enumerate() {
            let v = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or_else(|| format!("invalid base64: {:?} at offset {i}", c as char))?;
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        Ok(out)
    }
}

/// A response's headers as a recording holds them: (name, value as text).
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let text = base64::encode(&bytes);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(base64::decode(&text).unwrap(), bytes);
        }
        assert_eq!(base64::encode(b"hello"), "aGVsbG8=");
        assert!(base64::decode("a$==").is_err());
    }

    #[test]
    fn bodies_are_text_when_they_can_be() {
        let j = serde_json::to_string(&Blob(b"hi".to_vec())).unwrap();
        assert_eq!(j, r#"{"utf8":"hi"}"#);
        let j = serde_json::to_string(&Blob(vec![0xff, 0])).unwrap();
        assert_eq!(j, r#"{"base64":"/wA="}"#);
        let b: Blob = serde_json::from_str(&j).unwrap();
        assert_eq!(b.0, vec![0xff, 0]);
    }

    #[test]
    fn cells_round_trip_non_finite_reals() {
        let cells = vec![
            Cell::Null,
            Cell::Integer(-3),
            Cell::Real(f64::INFINITY),
            Cell::Real(1.5),
            Cell::Text("t".into()),
        ];
        let j = serde_json::to_string(&cells).unwrap();
        assert_eq!(
            j,
            r#"["null",{"integer":-3},{"real":"inf"},{"real":1.5},{"text":"t"}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Cell>>(&j).unwrap(), cells);
    }

    #[test]
    fn the_session_id_is_replaced_in_the_data() {
        let t = Table {
            name: "votes".into(),
            columns: vec!["who".into(), "n".into()],
            rows: vec![vec![Value::Text("abc123".into()), Value::Integer(1)]],
        };
        let secrets = [("abc123".to_string(), SESSION_PLACEHOLDER.to_string())];
        let r = RecordedTable::of(&t, &secrets);
        assert_eq!(r.rows[0][0], Cell::Text(SESSION_PLACEHOLDER.into()));
        assert_eq!(r.rows[0][1], Cell::Integer(1));
    }

    #[test]
    fn what_is_wrong_with_a_file_is_said() {
        let e = Recording::parse("{").unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
        let e = Recording::parse("{\"id\": 1}").unwrap_err().to_string();
        assert!(e.contains("no \"nebula_recording\""), "{e}");
        let e = Recording::parse("{\"nebula_recording\": 9}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("newer nebula"), "{e}");
        let e = Recording::parse("{\"nebula_recording\": 1, \"id\": \"x\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field"), "{e}");
    }
}
