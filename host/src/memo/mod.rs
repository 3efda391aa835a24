//! Memoised responses: what only pure functions allow.
//!
//! A GET route with `cache = { max_age_s, vary }` has its component's
//! response kept under a [`key::Key`] that holds everything the response
//! can depend on, the versions of the tables its reads read included
//! (`crate::data::versions`). A request whose key is kept is answered
//! from memory: no SQL, no instance. One whose client already holds the
//! response (`If-None-Match` with the key's `ETag`) gets 304 without even
//! that. A write bumps the versions of the tables it wrote when it
//! commits, so the next request makes a new key and sees the new data.
//!
//! The request path ([`crate::host`]) asks [`Memo::prepare`] for a route's
//! key before its reads, answers a hit with [`Memo::answer`], and offers
//! what the component answered to [`Memo::keep`].

mod entries;
pub mod key;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH, SET_COOKIE};

use self::entries::{Entries, Entry};
use self::key::{Inputs, Key};
use crate::data::versions::TableVersions;
use crate::data::ReadPlan;
use crate::executor::Payload;
use crate::manifest::{Binding, CacheSettings, RouteCache};
use crate::metrics::RouteStats;
use crate::model::RouteModel;

/// An app's response cache.
pub struct Memo {
    entries: Mutex<Entries>,
    versions: Option<Arc<TableVersions>>,
    /// Per route, in the model's order: `None` for a route not memoised.
    routes: Vec<Option<Memoised>>,
}

struct Memoised {
    cache: RouteCache,
    /// The tables its reads read (ids in `versions`).
    tables: Vec<usize>,
    /// A page that differs per visitor is kept per visitor, and must not
    /// sit in a shared cache on the way.
    per_visitor: bool,
}

/// A request on a memoised route, before anything runs.
pub struct Prepared {
    pub key: Key,
    /// What the component is given instead of the request's.
    pub seed: u64,
    pub now_ms: u64,
    expires_ms: u64,
    per_visitor: bool,
    etag: HeaderValue,
    cache_control: HeaderValue,
}

impl Memo {
    /// The cache of an app whose routes are `routes`; `None` when no route
    /// is memoised. A route whose reads touch tables the store cannot name
    /// (or a store that keeps no versions while the route reads) is not
    /// memoised, with a warning: it could never know its data changed.
    /// `versions` is asked only if a memoised route reads (it may open a
    /// deferred database).
    pub fn new(
        routes: &[RouteModel],
        versions: impl FnOnce() -> Option<Arc<TableVersions>>,
        settings: CacheSettings,
    ) -> Option<Memo> {
        let reads_memoised = routes
            .iter()
            .any(|r| r.cache.is_some() && !r.reads.is_empty());
        let versions = if reads_memoised { versions() } else { None };
        let routes: Vec<Option<Memoised>> = routes
            .iter()
            .map(|r| {
                let cache = r.cache.clone()?;
                let tables = if r.reads.is_empty() {
                    Vec::new()
                } else {
                    match versions.as_ref().and_then(|v| v.tables_read(&r.reads)) {
                        Some(t) => t,
                        None => {
                            tracing::warn!(
                                route = %r.text,
                                "not memoising this route: the database cannot say which tables its reads read"
                            );
                            return None;
                        }
                    }
                };
                let per_visitor = r
                    .reads
                    .iter()
                    .any(|read| read.bind.values().any(|b| *b == Binding::Session));
                Some(Memoised {
                    cache,
                    tables,
                    per_visitor,
                })
            })
            .collect();
        if routes.iter().all(Option::is_none) {
            return None;
        }
        Some(Memo {
            entries: Mutex::new(Entries::new(settings.max_bytes)),
            versions,
            routes,
        })
    }

    /// The key of a request on route `index`, if that route is memoised
    /// and the request is a GET or HEAD. `plans` are the route's reads
    /// bound with seed 0; `component` identifies the component's code.
    pub fn prepare(
        &self,
        index: usize,
        req: &http::Request<Payload>,
        plans: &[ReadPlan],
        component: &[u8],
        now_ms: u64,
    ) -> Option<Prepared> {
        let m = self.routes.get(index)?.as_ref()?;
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            return None;
        }
        // Versions that may have missed a commit (a node that lost its
        // notifications) name no data: run the request.
        if !m.tables.is_empty() && !self.versions.as_ref().is_some_and(|v| v.trusted()) {
            return None;
        }
        let window_ms = m.cache.max_age_s * 1000;
        let window_start_ms = now_ms - now_ms % window_ms;
        let key = key::key(
            req,
            &Inputs {
                route: index,
                component,
                cache: &m.cache,
                window_start_ms,
                plans,
                versions: self.versions.as_deref(),
                tables: &m.tables,
            },
        );
        let expires_ms = window_start_ms + window_ms;
        let max_age = ((expires_ms - now_ms) / 1000).min(m.cache.client_max_age_s);
        let scope = if m.per_visitor { "private" } else { "public" };
        Some(Prepared {
            seed: key.seed(),
            now_ms: window_start_ms,
            expires_ms,
            per_visitor: m.per_visitor,
            etag: HeaderValue::from_str(&key.etag()).expect("hex is a header value"),
            cache_control: HeaderValue::from_str(&format!("{scope}, max-age={max_age}"))
                .expect("ASCII"),
            key,
        })
    }

    /// The answer without the component: 304 if the client holds it, the
    /// kept response if there is one; `None`: call the component.
    pub fn answer(
        &self,
        p: &Prepared,
        req: &http::Request<Payload>,
        now_ms: u64,
        stats: &RouteStats,
    ) -> Option<http::Response<Bytes>> {
        if holds(req.headers(), &p.etag) {
            stats.memo().not_modified();
            let mut resp = http::Response::new(Bytes::new());
            *resp.status_mut() = http::StatusCode::NOT_MODIFIED;
            self.label(p, resp.headers_mut());
            return Some(resp);
        }
        let found = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.key, now_ms);
        let Some(entry) = found else {
            stats.memo().missed();
            return None;
        };
        stats.memo().hit();
        let mut resp = http::Response::new(entry.body.clone());
        *resp.status_mut() = entry.status;
        *resp.headers_mut() = entry.headers.clone();
        Some(resp)
    }

    /// Keeps the component's response to a prepared request, if it may be
    /// reused: a whole body, no error, no cookie, no effects; labels it with
    /// its `ETag` and `Cache-Control` unless it is an error or has effects.
    ///
    /// A page kept per visitor is not kept for a visitor who has no cookie
    /// yet: nobody would ever ask for it again.
    pub fn keep(
        &self,
        p: &Prepared,
        resp: &mut http::Response<Payload>,
        had_effects: bool,
        new_visitor: bool,
        stats: &Arc<RouteStats>,
    ) {
        let Payload::Whole(body) = resp.body() else {
            return;
        };
        if had_effects || resp.status().is_server_error() {
            return;
        }
        let body = body.clone();
        // The tag is right whether or not the answer is kept: the same key
        // gives the same answer.
        self.label(p, resp.headers_mut());
        if (p.per_visitor && new_visitor) || resp.headers().contains_key(SET_COOKIE) {
            return;
        }
        let entry = Entry::new(
            resp.status(),
            resp.headers().clone(),
            body,
            p.expires_ms,
            stats.clone(),
        );
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(p.key, Arc::new(entry));
    }

    /// Drops every kept response (a component swap, an idle trim).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// (entries, bytes) kept now.
    pub fn size(&self) -> (usize, u64) {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        (e.len(), e.bytes())
    }

    /// A memoised route's request headers as its component sees them: only
    /// those its `vary` names (the key holds exactly those).
    pub fn hide_headers(&self, index: usize, headers: &mut http::HeaderMap) {
        let Some(Some(m)) = self.routes.get(index) else {
            return;
        };
        let kept: Vec<(http::HeaderName, HeaderValue)> = m
            .cache
            .vary
            .iter()
            .flat_map(|name| {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| (name.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        headers.clear();
        for (k, v) in kept {
            headers.append(k, v);
        }
    }

    fn label(&self, p: &Prepared, headers: &mut http::HeaderMap) {
        headers.insert(ETAG, p.etag.clone());
        headers.insert(CACHE_CONTROL, p.cache_control.clone());
        privatise(headers);
    }
}

/// A memoised response that carries a cookie after all (the host's session
/// cookie for a new visitor) must not be kept by a shared cache on the way.
pub fn privatise(headers: &mut http::HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    if let Some(rest) = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("public"))
    {
        if let Ok(v) = HeaderValue::from_str(&format!("private{rest}")) {
            headers.insert(CACHE_CONTROL, v);
        }
    }
}

/// Whether `If-None-Match` lists `etag` (or is `*`).
fn holds(headers: &http::HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(want) = etag.to_str() else {
        return false;
    };
    headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag == want || tag.strip_prefix("W/") == Some(want))
        })
    })
}

#[cfg(test)]
mod tests;
