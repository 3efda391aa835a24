//! Spin's route syntax on Nebula's router, and the shape of the request a
//! Spin component gets (Spin's headers, an absolute URI).

use std::net::SocketAddr;

use crate::executor::wasi_http::spin_headers::add_spin_headers;

/// `/files/...` → `/files/*`; `:name` segments are the same in both syntaxes.
pub fn to_nebula_pattern(raw: &str) -> String {
    if raw == "/..." {
        return "/*".into();
    }
    match raw.strip_suffix("/...") {
        Some(prefix) => format!("{prefix}/*"),
        None => raw.to_string(),
    }
}

/// Makes a request what a wasi:http component expects: Spin's headers,
/// no transport headers (they confuse guests that forward requests), and
/// an absolute URI (wasi:http needs a scheme and an authority).
pub fn prepare_request<B>(
    req: &mut http::Request<B>,
    route: &str,
    params: &[(String, String)],
    client: Option<SocketAddr>,
) {
    let client = client.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let uri = req.uri().clone();
    let full_url = add_spin_headers(req.headers_mut(), &uri, route, params, client);
    req.headers_mut().remove(http::header::CONNECTION);
    if uri.authority().is_none() {
        // `spin-full-url` is the absolute form: scheme, the Host header (or
        // `localhost`) and the path with its query.
        if let Ok(abs) = http::Uri::try_from(full_url) {
            *req.uri_mut() = abs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{route_models, RouteModel};
    use crate::spin::manifest::SpinManifest;
    use anyhow::Result;
    use http::{HeaderMap, HeaderValue};

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

    /// The routes of `m` on Nebula's router, as the host routes them.
    struct R(Vec<RouteModel>, crate::router::Router);

    struct Hit<'a> {
        route: Raw<'a>,
        params: Vec<(String, String)>,
    }
    struct Raw<'a> {
        raw: &'a str,
    }

    impl R {
        fn new(m: &SpinManifest) -> Result<R> {
            let routes = route_models(m)?;
            let all: Vec<String> = crate::model::ALL_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect();
            let router =
                crate::router::Router::new(routes.iter().map(|r| (r.pattern.clone(), all.clone())));
            Ok(R(routes, router))
        }
        fn routes(&self) -> &[RouteModel] {
            &self.0
        }
        fn route(&self, path: &str) -> Option<Hit<'_>> {
            match self.1.route("GET", path) {
                crate::router::RouteMatch::Found { route, params } => Some(Hit {
                    route: Raw {
                        raw: &self.0[route].text,
                    },
                    params,
                }),
                _ => None,
            }
        }
    }

    #[test]
    fn spin_precedence_exact_then_params_then_wildcards() {
        let r = R::new(&manifest(&[
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
        let r = R::new(&manifest(&["/users/:id/posts/..."])).unwrap();
        let m = r.route("/users/42/posts/2024/hello").unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        let uri: http::Uri = "/users/42/posts/2024/hello?x=1".parse().unwrap();
        add_spin_headers(
            &mut h,
            &uri,
            m.route.raw,
            &m.params,
            "127.0.0.1:5555".parse().unwrap(),
        );
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
