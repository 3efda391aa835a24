//! The request path, one stage at a time: route, admit, read the body, take
//! an instance slot, read the route's data, call the component (with the
//! hooks around it), check its response, apply its effects, respond. Each
//! stage either hands the request on or stops it with a [`Failure`], which
//! [`Failure::respond`] turns into a status and a page.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::Method;
use http_body_util::BodyExt;

use super::admission::Slot;
use super::failure::Failure;
use super::hooks::CallView;
use super::{body, health, once, reads, static_files, Host};
use crate::body::capped::{CapExceeded, Capped};
use crate::contract::LAST_INSERT_ROWID;
use crate::data::idempotency::{Applied, Once};
use crate::executor::{Body, BoxError, Call, CallError, Executor, Outcome, Payload};
use crate::metrics;
use crate::model::RouteModel;
use crate::router::RouteMatch;
use crate::web::csrf::{self, CrossSite};
use crate::web::rate_limit;
use crate::web::session::Visitor;

/// A request that found its route.
struct Routed {
    index: usize,
    params: Vec<(String, String)>,
}

impl Host {
    /// Serves one request: every answer, the host's own pages included,
    /// gets the app's headers and the request id.
    pub async fn serve(
        &self,
        req: http::Request<Body>,
        peer: Option<SocketAddr>,
        seed: u64,
        now_ms: u64,
    ) -> http::Response<Body> {
        let resp = self
            .serve_payload(req.map(Payload::Stream), peer, seed, now_ms)
            .await;
        resp.map(|payload| match payload {
            Payload::Whole(b) => crate::server::full_body(b),
            Payload::Stream(s) => s,
        })
    }

    /// [`Host::serve`] for a request whose body may already be whole (the
    /// in-process API), answering with a whole body where the component did.
    pub(super) async fn serve_payload(
        &self,
        req: http::Request<Payload>,
        peer: Option<SocketAddr>,
        seed: u64,
        now_ms: u64,
    ) -> http::Response<Payload> {
        let id = self.request_ids.next();
        let is_head = req.method() == Method::HEAD;
        let (result, stats) = metrics::cpu::request(
            &self.metrics.unmatched,
            self.stages(&id, req, peer, seed, now_ms),
        )
        .await;
        let mut resp = result.unwrap_or_else(|f| f.respond(&id).map(Payload::Whole));
        stats.count(resp.status());
        self.model.headers.apply(resp.headers_mut());
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        if is_head {
            if let Payload::Whole(b) = resp.body_mut() {
                *b = Bytes::new();
            }
        }
        resp
    }

    async fn stages(
        &self,
        id: &Arc<str>,
        req: http::Request<Payload>,
        peer: Option<SocketAddr>,
        seed: u64,
        now_ms: u64,
    ) -> Result<http::Response<Payload>, Failure> {
        if req.uri().path() == health::PATH {
            return Ok(self.health(req.uri()).await.map(Payload::Whole));
        }
        if let Some(resp) = self.static_file(&req)? {
            return Ok(resp.map(Payload::Whole));
        }
        let Routed { index, params } = self.route(&req)?;
        let route = &self.model.routes[index];
        let stats = self.metrics.route_at(index);
        metrics::cpu::charge_request_to(stats);
        self.admit(route, index, &req, peer)?;
        let component =
            self.components
                .get(&route.component)
                .map_err(|error| Failure::Unavailable {
                    component: route.component.clone(),
                    error,
                })?;
        let mut req = body::prepare(req, &self.model.limits, component.wants_whole_body()).await?;
        if !component.wants_whole_body() {
            crate::spin::routes::prepare_request(&mut req, &route.text, &params, peer);
        }
        let visitor = self.sessions.as_ref().map(|s| {
            let v = s.visitor(req.headers());
            s.strip(req.headers_mut());
            v
        });
        // A memoised route: its answer may be known without running
        // anything; if not, the component gets the key's seed and clock.
        let mut unseeded = None;
        let memo = self.memo.as_ref().and_then(|m| {
            route.cache.as_ref()?;
            let plans = unseeded.insert(reads::plans(route, &req, &params, visitor.as_ref(), 0));
            let identity = self.components.identity(&route.component)?;
            Some((m, m.prepare(index, &req, plans, &identity, now_ms)?))
        });
        let (seed, now_ms) = match &memo {
            Some((m, p)) => {
                if let Some(resp) = m.answer(p, &req, now_ms, stats) {
                    let mut resp = resp.map(Payload::Whole);
                    if let (Some(v), Some(s)) = (&visitor, &self.sessions) {
                        s.keep_session_cookie(resp.headers_mut(), v);
                        crate::memo::privatise(resp.headers_mut());
                    }
                    return Ok(resp);
                }
                (p.seed, p.now_ms)
            }
            None => (seed, now_ms),
        };
        // A retry of a request that committed gets its recorded response
        // and runs nothing.
        let key = match &self.store {
            Some(_) if !route.writes.is_empty() => {
                once::key_of(&req, &route.text, visitor.as_ref())?
            }
            _ => None,
        };
        if let (Some(key), Some(store)) = (&key, &self.store) {
            let found =
                store
                    .recall(key.scoped.clone())
                    .await
                    .map_err(|error| Failure::WriteFailed {
                        component: route.component.clone(),
                        error,
                    })?;
            if let Some((fingerprint, recorded)) = found {
                return once::replay(key, &fingerprint, recorded);
            }
        }
        // A slot before anything costly (reads, an instance); refused
        // requests cost a small page.
        let slot = self.gate.enter().await.map_err(|why| Failure::Busy {
            route: route.text.clone(),
            why,
            waiting: self.gate.waiting(),
            retry_after_secs: self.gate.retry_after_secs(),
        })?;
        // Bound before any await: the request's body is not `Sync`. The
        // key's plans serve unless a read binds the seed (the key's, now).
        let plans = match unseeded {
            Some(plans) if memo.is_some() && !reads::binds_seed(route) => plans,
            _ => reads::plans(route, &req, &params, visitor.as_ref(), seed),
        };
        if let Some((m, _)) = &memo {
            // Bound above from every header; the component sees only `vary`'s.
            m.hide_headers(index, req.headers_mut());
        }
        if !plans.is_empty() && self.store.is_some() {
            stats.memo().read(plans.len());
        }
        let data = self.read(route, plans).await?;
        let call = Call {
            id: id.clone(),
            request: req,
            route: Arc::from(route.text.as_str()),
            params,
            seed,
            now_ms,
            data,
            limits: self.components.limits(&route.component),
            stats: stats.clone(),
        };
        let recording = self.recording(route, &call, visitor.as_ref());
        let called = self.call(&*component, call).await;
        let answered = recording.and_then(|r| r.end(&called));
        let outcome = match called? {
            Called::Answered(outcome) => outcome,
            Called::Hooked(resp) => return Ok(resp.map(Payload::Whole)),
        };
        // What follows the call may still fail the request (a response too
        // large, its writes refused): a recording waits for it.
        let ended = async {
            let (mut resp, slot) = self.check(&*component, outcome.response, slot)?;
            if let Some((m, p)) = &memo {
                let had_effects = outcome.effects.as_ref().is_some_and(|e| !e.is_empty());
                let new_visitor = visitor.as_ref().is_some_and(|v| v.set_cookie.is_some());
                m.keep(p, &mut resp, had_effects, new_visitor, stats);
            }
            let record = key.as_ref().and_then(|k| once::once(k, &resp));
            if outcome.effects.is_some() || record.is_some() {
                let effects = outcome.effects.unwrap_or_default();
                match self
                    .apply(&*component, route, effects, visitor.as_ref(), record)
                    .await?
                {
                    Applied::Committed { last_insert_rowid } => {
                        fill_in_rowid(resp.headers_mut(), last_insert_rowid)
                    }
                    // A twin of this request (same key) committed first; this
                    // one wrote nothing and answers as the twin did.
                    Applied::Duplicate {
                        fingerprint,
                        recorded,
                    } => {
                        let key = key.as_ref().expect("a duplicate needs a key");
                        return once::replay(key, &fingerprint, recorded);
                    }
                }
            }
            drop(slot);
            if let (Some(v), Some(s)) = (&visitor, &self.sessions) {
                s.keep_session_cookie(resp.headers_mut(), v);
                if memo.is_some() {
                    crate::memo::privatise(resp.headers_mut());
                }
            }
            Ok(resp)
        }
        .await;
        if let Some(a) = answered {
            a.finish(ended.as_ref().err());
        }
        ended
    }

    /// Static files, if the app has them and the path is under their prefix.
    fn static_file(
        &self,
        req: &http::Request<Payload>,
    ) -> Result<Option<http::Response<Bytes>>, Failure> {
        let Some(st) = &self.model.static_files else {
            return Ok(None);
        };
        let Some(rest) = static_files::strip_prefix(req.uri().path(), &st.prefix) else {
            return Ok(None);
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(Failure::MethodNotAllowed {
                allow: vec!["GET".into(), "HEAD".into()],
            });
        }
        metrics::cpu::charge_request_to(&self.metrics.static_files);
        let root = self.static_root.as_deref().unwrap_or(&st.dir);
        Ok(Some(static_files::serve(root, rest, req.headers())))
    }

    /// Route: which route, with which parameters.
    fn route(&self, req: &http::Request<Payload>) -> Result<Routed, Failure> {
        let path = req.uri().path();
        // A Spin route answers every method; the component decides.
        let method = if self.model.is_spin() {
            "GET"
        } else {
            req.method().as_str()
        };
        match self.router.route(method, path) {
            RouteMatch::Found { route, params } => Ok(Routed {
                index: route,
                params,
            }),
            RouteMatch::NotFound => Err(Failure::NotFound {
                path: path.to_string(),
            }),
            RouteMatch::MethodNotAllowed { allow } => Err(Failure::MethodNotAllowed { allow }),
        }
    }

    /// Admit: cross-site writes and rate limits.
    fn admit(
        &self,
        route: &RouteModel,
        index: usize,
        req: &http::Request<Payload>,
        peer: Option<SocketAddr>,
    ) -> Result<(), Failure> {
        if route.cross_site == CrossSite::Refuse {
            if let Some(why) = csrf::refusal(req.method(), req.headers()) {
                return Err(Failure::CrossSite {
                    route: route.text.clone(),
                    method: req.method().to_string(),
                    why,
                    hint: if self.model.is_spin() {
                        format!("a component that serves other sites sets cross_site = \"allow\" in [component.{}.tool.nebula]", route.component)
                    } else {
                        "a route that serves other sites sets cross_site = \"allow\"".into()
                    },
                });
            }
        }
        if let (Some(limit), true) = (&route.rate_limit, self.opts.rate_limits) {
            let client = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.ip());
            if let Err(wait) = self
                .limiter
                .check(index, client, limit, std::time::Instant::now())
            {
                return Err(Failure::RateLimited {
                    route: route.text.clone(),
                    client,
                    limit: limit.to_string(),
                    retry_after_secs: rate_limit::retry_after_secs(wait),
                });
            }
        }
        Ok(())
    }

    /// Read: the route's reads, in one snapshot.
    async fn read(
        &self,
        route: &RouteModel,
        plans: Vec<crate::data::ReadPlan>,
    ) -> Result<Vec<crate::contract::Table>, Failure> {
        let (Some(store), false) = (&self.store, plans.is_empty()) else {
            return Ok(Vec::new());
        };
        store
            .read(plans)
            .await
            .map_err(|error| Failure::ReadFailed {
                route: route.text.clone(),
                error,
            })
    }

    /// Call: the hooks before, the component, the hooks after.
    async fn call(&self, component: &dyn Executor, call: Call) -> Result<Called, Failure> {
        // Only with hooks is anything copied for them.
        let seen = (!self.hooks.is_empty()).then(|| Seen::of(&call));
        let view = seen.as_ref().map(|s| s.view(component.name()));
        if let Some(view) = &view {
            if let Some(resp) = self.hooks.iter().find_map(|h| h.before(view)) {
                return Ok(Called::Hooked(resp));
            }
        }
        let (stats, limits) = (call.stats.clone(), call.limits);
        let outcome = component.call(call).await.map_err(|e| {
            let name = component.name().to_string();
            match e {
                CallError::Timeout => Failure::Timeout {
                    component: name,
                    timeout: limits.timeout,
                },
                CallError::Trap(message) => Failure::Trapped {
                    component: name,
                    message,
                },
                CallError::BadResponse(message) => Failure::BadResponse {
                    component: name,
                    message,
                },
            }
        })?;
        let cost = outcome.cost;
        if let Some(t) = cost.instantiate {
            stats.component.instantiated(t);
        }
        if let Some(t) = cost.call {
            stats.component.called(t);
        }
        if let Some(m) = cost.memory_peak {
            stats.component.memory(m);
        }
        if let Some(view) = &view {
            for h in &self.hooks {
                h.after(view, &outcome);
            }
        }
        Ok(Called::Answered(outcome))
    }

    /// Check the response: over `max_response_bytes` it is a 500 and its
    /// effects are not applied. A streamed body is sent with its status
    /// and headers before it is written, so one that outgrows the cap is
    /// cut off (the client sees an incomplete response, never a whole
    /// wrong one); it holds the request's slot until it is done.
    fn check(
        &self,
        component: &dyn Executor,
        resp: http::Response<Payload>,
        slot: Slot,
    ) -> Result<(http::Response<Payload>, Option<Slot>), Failure> {
        let max = self.components.limits(component.name()).max_response_bytes;
        let size = match resp.body() {
            Payload::Whole(b) => Some(b.len() as u64),
            Payload::Stream(_) => crate::server::content_length(resp.headers()),
        };
        if let Some(size) = size.filter(|&n| n > max as u64) {
            return Err(Failure::TooLarge {
                component: component.name().to_string(),
                size,
                limit: max,
                hint: raise_hint(&self.model, component.name()),
            });
        }
        let (parts, payload) = resp.into_parts();
        Ok(match payload {
            Payload::Whole(b) => (
                http::Response::from_parts(parts, Payload::Whole(b)),
                Some(slot),
            ),
            Payload::Stream(s) => {
                let name = component.name().to_string();
                let hint = raise_hint(&self.model, &name);
                let capped = Capped::new(s, max as u64)
                    .holding(slot)
                    .map_err(move |e: BoxError| {
                        if let Some(cap) = e.downcast_ref::<CapExceeded>() {
                            tracing::error!(component = %name, "response body cut off: {cap} ({hint})");
                        }
                        e
                    })
                    .boxed_unsync();
                (
                    http::Response::from_parts(parts, Payload::Stream(capped)),
                    None,
                )
            }
        })
    }

    /// Apply effects: all of them in one transaction, or none, with the
    /// idempotency record if the request has a key. A response that asks
    /// for none has last_insert_rowid 0, never another request's.
    async fn apply(
        &self,
        component: &dyn Executor,
        route: &RouteModel,
        effects: Vec<crate::contract::Effect>,
        visitor: Option<&Visitor>,
        record: Option<Once>,
    ) -> Result<Applied, Failure> {
        let Some(store) = self
            .store
            .as_ref()
            .filter(|_| !effects.is_empty() || record.is_some())
        else {
            return Ok(Applied::Committed {
                last_insert_rowid: 0,
            });
        };
        let session = visitor.map(|v| v.id.clone());
        store
            .apply(effects, session, route.writes.clone(), record)
            .await
            .map_err(|error| Failure::WriteFailed {
                component: component.name().to_string(),
                error,
            })
    }
}

/// A copy of what a call is given, for the hooks to see.
struct Seen {
    id: Arc<str>,
    route: Arc<str>,
    method: Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    seed: u64,
    now_ms: u64,
    data: Vec<crate::contract::Table>,
}

impl Seen {
    fn of(call: &Call) -> Seen {
        Seen {
            id: call.id.clone(),
            route: call.route.clone(),
            method: call.request.method().clone(),
            uri: call.request.uri().clone(),
            headers: call.request.headers().clone(),
            seed: call.seed,
            now_ms: call.now_ms,
            data: call.data.clone(),
        }
    }

    fn view<'a>(&'a self, component: &'a str) -> CallView<'a> {
        CallView {
            id: &self.id,
            component,
            route: &self.route,
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            seed: self.seed,
            now_ms: self.now_ms,
            data: &self.data,
        }
    }
}

/// What the call stage produced.
pub(super) enum Called {
    Answered(Outcome),
    /// A hook answered before the component was called.
    Hooked(http::Response<Bytes>),
}

/// Fills `{{last_insert_rowid}}` in the response's header values.
fn fill_in_rowid(headers: &mut http::HeaderMap, rowid: i64) {
    for v in headers.values_mut() {
        let Ok(text) = v.to_str() else { continue };
        if text.contains(LAST_INSERT_ROWID) {
            if let Ok(filled) =
                HeaderValue::from_str(&text.replace(LAST_INSERT_ROWID, &rowid.to_string()))
            {
                *v = filled;
            }
        }
    }
}

/// Where a component's `max_response_bytes` is raised.
fn raise_hint(model: &crate::model::AppModel, component: &str) -> String {
    if model.is_spin() {
        format!(
            "raise [component.{component}.tool.nebula.limits] max_response_bytes if it is expected"
        )
    } else {
        format!("raise [components.{component}.limits] max_response_bytes if it is expected")
    }
}
