//! Spin's route syntax on Nebula's router, and the request headers Spin sets
//! for a component (`spin-full-url`, `spin-path-info`, …).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::manifest::SpinManifest;
use crate::router::{Pattern, RouteMatch, Router};

/// A public route: its pattern as written (`/users/:id/...`) and its component.
#[derive(Debug, Clone)]
pub struct SpinRoute {
    pub raw: String,
    pub component: String,
}

pub struct SpinRouter {
    router: Router,
    routes: Vec<SpinRoute>,
}

pub struct Matched<'a> {
    pub route: &'a SpinRoute,
    pub params: Vec<(String, String)>,
}

impl SpinRouter {
    /// Private endpoints (`route = { private = true }`) get no route.
    pub fn new(manifest: &SpinManifest) -> Result<SpinRouter> {
        let mut routes = Vec::new();
        let mut patterns = Vec::new();
        for t in &manifest.triggers {
            let Some(raw) = &t.route else { continue };
            let pattern = Pattern::parse(&to_nebula_pattern(raw))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{}: route {raw:?}", manifest.file.display()))?;
            // Spin routes answer every method; the component decides.
            let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec();
            patterns.push((pattern, methods));
            routes.push(SpinRoute {
                raw: raw.clone(),
                component: t.component.clone(),
            });
        }
        Ok(SpinRouter {
            router: Router::new(patterns),
            routes,
        })
    }

    pub fn routes(&self) -> &[SpinRoute] {
        &self.routes
    }

    pub fn route(&self, path: &str) -> Option<Matched<'_>> {
        match self.router.route("GET", path) {
            RouteMatch::Found { route, params } => Some(Matched {
                route: &self.routes[route],
                params,
            }),
            _ => None,
        }
    }
}

/// `/files/...` → `/files/*`; `:name` segments are the same in both syntaxes.
pub(super) fn to_nebula_pattern(raw: &str) -> String {
    if raw == "/..." {
        return "/*".into();
    }
    match raw.strip_suffix("/...") {
        Some(prefix) => format!("{prefix}/*"),
        None => raw.to_string(),
    }
}

/// Adds the headers Spin sets for every request it gives a component.
pub fn add_spin_headers(
    headers: &mut HeaderMap,
    uri: &http::Uri,
    m: &Matched<'_>,
    client: SocketAddr,
) {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let trailing = m
        .params
        .iter()
        .find(|(k, _)| k == "*")
        .map(|(_, v)| {
            if v.is_empty() {
                String::new()
            } else {
                format!("/{v}")
            }
        })
        .unwrap_or_default();
    let raw = m.route.raw.as_str();
    let prefix = raw.strip_suffix("/...").unwrap_or(raw);
    let mut set = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    set("spin-full-url", &format!("http://{host}{path_and_query}"));
    set("spin-path-info", &trailing);
    set("spin-matched-route", raw);
    set("spin-base-path", "/");
    set("spin-raw-component-route", raw);
    set("spin-component-route", prefix);
    set("spin-client-addr", &client.to_string());
    for (name, value) in &m.params {
        if name != "*" {
            set(
                &format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(routes: &[&str]) -> SpinManifest {
        let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"t\"\n");
        for r in routes {
            text.push_str(&format!(
                "[[trigger.http]]\nroute = \"{r}\"\ncomponent = \"c\"\n"
            ));
        }
        text.push_str("[[trigger.http]]\nroute = { private = true }\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n");
        SpinManifest::parse(std::path::Path::new("spin.toml"), &text).unwrap()
    }

    #[test]
    fn spin_precedence_exact_then_params_then_wildcards() {
        let r = SpinRouter::new(&manifest(&[
            "/...",
            "/users/:id",
            "/users/:id/posts/...",
            "/users/me",
            "/static/...",
        ]))
        .unwrap();
        assert_eq!(r.routes().len(), 5, "the private endpoint has no route");
        assert_eq!(r.route("/users/me").unwrap().route.raw, "/users/me");
        assert_eq!(r.route("/users/7").unwrap().route.raw, "/users/:id");
        assert_eq!(
            r.route("/users/7/posts/a/b").unwrap().route.raw,
            "/users/:id/posts/..."
        );
        assert_eq!(
            r.route("/users/7/posts").unwrap().route.raw,
            "/users/:id/posts/..."
        );
        assert_eq!(
            r.route("/static/css/x.css").unwrap().route.raw,
            "/static/..."
        );
        assert_eq!(r.route("/anything/else").unwrap().route.raw, "/...");
    }

    #[test]
    fn headers_are_the_ones_spin_sets() {
        let r = SpinRouter::new(&manifest(&["/users/:id/posts/..."])).unwrap();
        let m = r.route("/users/42/posts/2024/hello").unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        let uri: http::Uri = "/users/42/posts/2024/hello?x=1".parse().unwrap();
        add_spin_headers(&mut h, &uri, &m, "127.0.0.1:5555".parse().unwrap());
        let get = |k: &str| h.get(k).unwrap().to_str().unwrap().to_string();
        assert_eq!(
            get("spin-full-url"),
            "http://127.0.0.1:3000/users/42/posts/2024/hello?x=1"
        );
        assert_eq!(get("spin-path-info"), "/2024/hello");
        assert_eq!(get("spin-matched-route"), "/users/:id/posts/...");
        assert_eq!(get("spin-raw-component-route"), "/users/:id/posts/...");
        assert_eq!(get("spin-component-route"), "/users/:id/posts");
        assert_eq!(get("spin-base-path"), "/");
        assert_eq!(get("spin-client-addr"), "127.0.0.1:5555");
        assert_eq!(get("spin-path-match-id"), "42");
    }
}
