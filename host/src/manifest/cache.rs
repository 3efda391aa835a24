//! A route's `cache = { max_age_s, vary }` and the app's `[cache]`: which
//! GET routes have their responses memoised, and how much memory the
//! memoised responses may take (the response cache is `crate::memo`).

use std::ops::Range;

use toml::Spanned;

use super::raw::{RawCacheSection, RawRouteCache};

/// A memoised route's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    /// How long one response may be reused: the component's clock is
    /// rounded down to windows this long, and the response's
    /// `Cache-Control: max-age` is what is left of the window.
    pub max_age_s: u64,
    /// How long browsers may reuse a response without asking (at most
    /// what is left of the window). 0 (the default): they ask every time,
    /// with `If-None-Match`, and get a 304 that costs no call while the
    /// data is unchanged, so a visitor sees their own vote at once.
    pub client_max_age_s: u64,
    /// The request headers the component sees (lower case); each splits
    /// the cache. Every other header is hidden from it.
    pub vary: Vec<http::HeaderName>,
}

/// `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Memoised responses (bodies, headers, keys) take at most this much memory.
    pub max_bytes: u64,
}

/// 32 MiB: the Academemes site's pages for a few thousand visitors.
pub const DEFAULT_MAX_BYTES: u64 = 32 << 20;

/// A day: longer windows make a stale answer after a restart of a
/// component's clock too likely to notice; the data versions are what keep
/// answers fresh anyway.
const MAX_AGE_LIMIT_S: u64 = 86_400;

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What is wrong with a `cache` key: (span, key below the route, message).
pub type CacheError = (Option<Range<usize>>, &'static str, String);

/// Checks a route's `cache`: only for a route that answers GET (and HEAD)
/// and asks for no writes, since a memoised call is never made again.
pub fn route_cache(
    raw: &Spanned<RawRouteCache>,
    methods: &[String],
    writes: &[Spanned<String>],
) -> Result<RouteCache, CacheError> {
    if let Some(m) = methods.iter().find(|m| *m != "GET" && *m != "HEAD") {
        return Err((
            Some(raw.span()),
            "cache",
            format!(
                "only GET routes may be cached, and this one answers {m}; move `cache` to a route with methods = [\"GET\"]"
            ),
        ));
    }
    if let Some(w) = writes.first() {
        return Err((
            Some(w.span()),
            "cache",
            format!(
                "a cached route is not called again for the same request, so it cannot ask for writes ({:?}); remove `cache` or the route's writes",
                w.get_ref()
            ),
        ));
    }
    let raw = raw.get_ref();
    let max_age_s = *raw.max_age_s.get_ref();
    if max_age_s == 0 || max_age_s > MAX_AGE_LIMIT_S {
        return Err((
            Some(raw.max_age_s.span()),
            "cache.max_age_s",
            format!("expected 1 to {MAX_AGE_LIMIT_S} seconds, found {max_age_s}"),
        ));
    }
    let mut vary: Vec<http::HeaderName> = Vec::new();
    for v in &raw.vary {
        let name = http::HeaderName::from_bytes(v.get_ref().as_bytes()).map_err(|_| {
            (
                Some(v.span()),
                "cache.vary",
                format!("{:?} is not a header name", v.get_ref()),
            )
        })?;
        if name == http::header::COOKIE || name == http::header::AUTHORIZATION {
            return Err((
                Some(v.span()),
                "cache.vary",
                format!(
                    "varying on {name} would keep one copy per visitor of what should not be kept at all; a page that depends on the visitor binds `session` in its reads (cached per visitor) or has no `cache`"
                ),
            ));
        }
        if vary.contains(&name) {
            return Err((
                Some(v.span()),
                "cache.vary",
                format!("{name} is listed twice"),
            ));
        }
        vary.push(name);
    }
    let client_max_age_s = raw.client_max_age_s.as_ref().map_or(0, |v| *v.get_ref());
    if let Some(v) = raw
        .client_max_age_s
        .as_ref()
        .filter(|v| *v.get_ref() > max_age_s)
    {
        return Err((
            Some(v.span()),
            "cache.client_max_age_s",
            format!(
                "browsers may keep a response at most as long as the host does (max_age_s = {max_age_s}); found {}",
                v.get_ref()
            ),
        ));
    }
    Ok(RouteCache {
        max_age_s,
        client_max_age_s,
        vary,
    })
}

/// `[cache]`, with its default when absent.
pub fn settings(raw: Option<RawCacheSection>) -> Result<CacheSettings, CacheError> {
    let Some(raw) = raw else {
        return Ok(CacheSettings::default());
    };
    let max_bytes = match raw.max_bytes {
        None => DEFAULT_MAX_BYTES,
        Some(v) if *v.get_ref() < 4096 => {
            return Err((
                Some(v.span()),
                "cache.max_bytes",
                format!(
                    "{} bytes would hold no page; give at least 4096 (the default is {DEFAULT_MAX_BYTES})",
                    v.get_ref()
                ),
            ))
        }
        Some(v) => *v.get_ref(),
    };
    Ok(CacheSettings { max_bytes })
}
