//! Route patterns and matching.
//!
//! A pattern is a list of `/`-separated segments: a literal (`memes`), a
//! parameter (`:id`), a parameter with a literal suffix (`:id.svg`), or a
//! trailing wildcard (`*` or `*rest`) that takes the rest of the path. When
//! several patterns match, the most specific wins, segment by segment:
//! literal > parameter with suffix > parameter > wildcard. So `/memes/new`
//! beats `/memes/:id`, and `/memes/7.svg` goes to `/memes/:id.svg`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param { name: String, suffix: String },
    Wildcard(String),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a route pattern; the error says what is wrong with it.
    pub fn parse(source: &str) -> Result<Pattern, String> {
        if !source.starts_with('/') {
            return Err(format!(
                "a route path must start with '/', found {source:?}"
            ));
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = split_path(source).collect();
        // A request path's empty segments never match (one trailing slash is
        // dropped), so a pattern with one would be a route nothing reaches.
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "route path {source:?} has an empty segment ('//'); remove the extra '/'"
            ));
        }
        for (i, part) in parts.iter().enumerate() {
            let seg = if let Some(rest) = part.strip_prefix(':') {
                let (name, suffix) = match rest.find('.') {
                    Some(dot) => (&rest[..dot], &rest[dot..]),
                    None => (rest, ""),
                };
                if !is_ident(name) {
                    return Err(format!(
                        "route parameter {part:?} in {source:?} needs a name of letters, digits, '_' or '-'"
                    ));
                }
                Segment::Param {
                    name: name.to_string(),
                    suffix: suffix.to_string(),
                }
            } else if let Some(name) = part.strip_prefix('*') {
                if i != parts.len() - 1 {
                    return Err(format!(
                        "a wildcard may only be the last segment of a route, found {part:?} inside {source:?}"
                    ));
                }
                if !name.is_empty() && !is_ident(name) {
                    return Err(format!(
                        "wildcard name {name:?} in {source:?} must be letters, digits, '_' or '-'"
                    ));
                }
                Segment::Wildcard(if name.is_empty() {
                    "*".into()
                } else {
                    name.into()
                })
            } else {
                if part.contains(['*', ':', '?', '#']) {
                    return Err(format!(
                        "segment {part:?} in {source:?} mixes text with ':', '*', '?' or '#'; use ':name' or '*name' as a whole segment"
                    ));
                }
                Segment::Literal(part.to_string())
            };
            segments.push(seg);
        }
        let mut seen = Vec::new();
        for s in &segments {
            if let Segment::Param { name, .. } | Segment::Wildcard(name) = s {
                if seen.contains(&name) {
                    return Err(format!("parameter {name:?} appears twice in {source:?}"));
                }
                seen.push(name);
            }
        }
        Ok(Pattern {
            source: source.to_string(),
            segments,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param { name, .. } | Segment::Wildcard(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Matches a request path (still percent-encoded); returns the bound
    /// parameters, percent-decoded, and the pattern's specificity.
    fn matches(&self, path: &str) -> Option<Matched> {
        let parts: Vec<&str> = split_path(path).collect();
        let mut params = Vec::new();
        let mut rank = Vec::with_capacity(self.segments.len());
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Wildcard(name) => {
                    let rest = parts.get(i..).unwrap_or(&[]);
                    let decoded: Vec<Cow<str>> = rest.iter().map(|p| decode(p)).collect();
                    params.push((name.clone(), decoded.join("/")));
                    rank.push(0);
                    return Some((params, rank));
                }
                Segment::Literal(lit) => {
                    let part = parts.get(i)?;
                    if decode(part) != lit.as_str() {
                        return None;
                    }
                    rank.push(3);
                }
                Segment::Param { name, suffix } => {
                    let part = decode(parts.get(i)?);
                    let value = part.strip_suffix(suffix.as_str())?;
                    if value.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), value.to_string()));
                    rank.push(if suffix.is_empty() { 1 } else { 2 });
                }
            }
        }
        // Ending exactly here beats a wildcard that would match nothing.
        rank.push(1);
        (parts.len() == self.segments.len()).then_some((params, rank))
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn decode(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

/// Splits a path into segments; `/` has none and one trailing slash is ignored.
fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// Bound parameters and the specificity rank of a match.
type Matched = (Vec<(String, String)>, Vec<u8>);

/// What the router decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        route: usize,
        params: Vec<(String, String)>,
    },
    /// Some route has this path, none with this method.
    MethodNotAllowed {
        allow: Vec<String>,
    },
    NotFound,
}

/// The routes of one app, in manifest order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(Pattern, Vec<String>)>,
}

impl Router {
    pub fn new(routes: impl IntoIterator<Item = (Pattern, Vec<String>)>) -> Router {
        Router {
            routes: routes.into_iter().collect(),
        }
    }

    pub fn route(&self, method: &str, path: &str) -> RouteMatch {
        let mut best: Option<(usize, Matched)> = None;
        let mut matched_any = false;
        for (i, (pattern, methods)) in self.routes.iter().enumerate() {
            let Some((params, rank)) = pattern.matches(path) else {
                continue;
            };
            matched_any = true;
            let accepts = methods
                .iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET"));
            if accepts && best.as_ref().is_none_or(|(_, (_, r))| rank > *r) {
                best = Some((i, (params, rank)));
            }
        }
        match best {
            Some((route, (params, _))) => RouteMatch::Found { route, params },
            None if !matched_any => RouteMatch::NotFound,
            // Only a 405 needs the methods of every route the path matched.
            None => RouteMatch::MethodNotAllowed {
                allow: self.allowed(path),
            },
        }
    }

    /// The methods of every route `path` matches, for a 405's `Allow`.
    fn allowed(&self, path: &str) -> Vec<String> {
        let mut allow: Vec<String> = Vec::new();
        for (pattern, methods) in &self.routes {
            if pattern.matches(path).is_none() {
                continue;
            }
            for m in methods {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
            }
        }
        if allow.iter().any(|m| m == "GET") && !allow.iter().any(|m| m == "HEAD") {
            allow.push("HEAD".into());
        }
        allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(defs: &[(&str, &[&str])]) -> Router {
        Router::new(defs.iter().map(|(p, ms)| {
            (
                Pattern::parse(p).unwrap(),
                ms.iter().map(|m| m.to_string()).collect(),
            )
        }))
    }

    fn found(r: &Router, method: &str, path: &str) -> (usize, Vec<(String, String)>) {
        match r.route(method, path) {
            RouteMatch::Found { route, params } => (route, params),
            other => panic!("{method} {path}: expected a match, got {other:?}"),
        }
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/memes/:id", &["GET"]),
            ("/memes/:id.svg", &["GET"]),
            ("/memes/new", &["GET"]),
            ("/*rest", &["GET"]),
            ("/", &["GET"]),
        ]);
        assert_eq!(found(&r, "GET", "/memes/7"), (0, vec![p("id", "7")]));
        assert_eq!(found(&r, "GET", "/memes/7.svg"), (1, vec![p("id", "7")]));
        assert_eq!(found(&r, "GET", "/memes/new"), (2, vec![]));
        assert_eq!(found(&r, "GET", "/"), (4, vec![]));
        assert_eq!(found(&r, "GET", "/a/b/c"), (3, vec![p("rest", "a/b/c")]));
        assert_eq!(
            found(&r, "GET", "/memes/7/extra"),
            (3, vec![p("rest", "memes/7/extra")])
        );
    }

    #[test]
    fn params_are_percent_decoded_and_trailing_slash_ignored() {
        let r = router(&[("/tags/:tag", &["GET"])]);
        assert_eq!(
            found(&r, "GET", "/tags/peer%20review/"),
            (0, vec![p("tag", "peer review")])
        );
        assert_eq!(r.route("GET", "/tags"), RouteMatch::NotFound);
        assert_eq!(r.route("GET", "/tags/a/b"), RouteMatch::NotFound);
    }

    #[test]
    fn suffix_param_needs_a_value() {
        let r = router(&[("/memes/:id.svg", &["GET"])]);
        assert_eq!(r.route("GET", "/memes/.svg"), RouteMatch::NotFound);
        assert_eq!(r.route("GET", "/memes/7.png"), RouteMatch::NotFound);
    }

    #[test]
    fn wrong_method_lists_allowed_ones() {
        let r = router(&[
            ("/memes", &["GET"]),
            ("/memes", &["POST"]),
            ("/memes/:id/vote", &["POST"]),
        ]);
        assert_eq!(found(&r, "POST", "/memes").0, 1);
        assert_eq!(found(&r, "HEAD", "/memes").0, 0);
        assert_eq!(
            r.route("DELETE", "/memes"),
            RouteMatch::MethodNotAllowed {
                allow: vec!["GET".into(), "POST".into(), "HEAD".into()]
            }
        );
        assert_eq!(
            r.route("GET", "/memes/3/vote"),
            RouteMatch::MethodNotAllowed {
                allow: vec!["POST".into()]
            }
        );
    }

    #[test]
    fn bad_patterns_are_explained() {
        for (pat, needle) in [
            ("memes", "must start with '/'"),
            ("/a/*rest/b", "last segment"),
            ("/a/:", "needs a name"),
            ("/a/:id/:id", "appears twice"),
            ("/a/b*c", "mixes text"),
            ("/a//b", "empty segment"),
            ("/a//", "empty segment"),
        ] {
            let e = Pattern::parse(pat).unwrap_err();
            assert!(e.contains(needle), "{pat}: {e}");
        }
    }
}
