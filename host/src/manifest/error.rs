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
        let line = span.map(|s| line_of(text, s.start)).or_else(|| find_key_line(text, key));
        Self::new(file, line, key, message)
    }

    pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e.span().map(|s| line_of(text, s.start));
        // toml's message is one line describing what was expected; its key
        // path is not exposed, so the line number is what locates it.
        Self::new(file, line, "", e.message().trim().to_string())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best effort for keys without a span: the line of a `[table]` header or
/// `key =` matching the last part of a dotted key.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let (table, last) = match key.rsplit_once('.') {
        Some((t, l)) => (t, l),
        None => (key, key),
    };
    let header = format!("[{table}]");
    let start = text
        .lines()
        .position(|l| l.trim() == header)
        .unwrap_or(0);
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
