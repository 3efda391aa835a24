use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A manifest problem: which file, which line (when known), which key, and
/// what was expected instead.
#[derive(Debug, Clone)]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl ManifestError {
    pub fn new(file: &Path, line: Option<usize>, key: &str, message: String) -> Self {
        ManifestError {
            file: file.to_path_buf(),
            line,
            key: key.to_string(),
            message,
        }
    }

    pub fn at_span(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        key: &str,
        message: String,
    ) -> Self {
        let line = span
            .map(|s| line_of(text, s.start))
            .or_else(|| find_key_line(text, key));
        Self::new(file, line, key, message)
    }

    pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e.span().map(|s| line_of(text, s.start));
        // toml does not expose the key path of an error; the table header
        // above the line and the key on it name it well enough.
        let key = line.map(|l| key_at_line(text, l)).unwrap_or_default();
        Self::new(file, line, &key, e.message().trim().to_string())
    }
}

/// The manifest being read, so that each check can point its error at the
/// file, line and key without carrying the file and text separately.
#[derive(Clone, Copy)]
pub(crate) struct ManifestText<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl ManifestText<'_> {
    /// An error at `span` (a value's place in the text), or, without one,
    /// at the line where `key` is written.
    pub fn error(&self, span: Option<Range<usize>>, key: &str, message: String) -> ManifestError {
        ManifestError::at_span(self.file, self.text, span, key, message)
    }

    /// A TOML syntax or shape (serde) error, at the line toml found it on.
    pub fn toml_error(&self, e: &toml::de::Error) -> ManifestError {
        ManifestError::from_toml(self.file, self.text, e)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `table.key` for the line `line` (1-based): the nearest `[table]` or
/// `[[table]]` header at or above it, and the `key =` on the line itself.
fn key_at_line(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line.min(lines.len());
    let table = lines[..upto]
        .iter()
        .rev()
        .find_map(|l| {
            let t = l.trim();
            t.starts_with('[').then(|| {
                t.trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim()
                    .to_string()
            })
        })
        .unwrap_or_default();
    let here = lines
        .get(line.wrapping_sub(1))
        .map(|l| l.trim())
        .unwrap_or("");
    let key = here
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !here.starts_with('['));
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (_, None) => table,
    }
}

/// Best effort for keys without a span: the line of a `[table]` header or
/// `key =` matching the last part of a dotted key.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let (table, last) = match key.rsplit_once('.') {
        Some((t, l)) => (t, l),
        None => (key, key),
    };
    let header = format!("[{table}]");
    let start = text.lines().position(|l| l.trim() == header).unwrap_or(0);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            let t = l.trim_start();
            t.starts_with(last) && t[last.len()..].trim_start().starts_with('=')
        })
        .map(|(i, _)| i + 1)
        .or(if start > 0 { Some(start + 1) } else { None })
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}
