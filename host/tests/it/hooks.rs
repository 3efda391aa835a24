//! The hooks around the call: what a response cache or a recorder will
//! plug into. A hook sees each call's request, route and data and its
//! outcome, and one that answers before the call spares the component.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nebula::executor::Outcome;
use nebula::host::hooks::{CallHook, CallView};

use crate::support::{build_guests, repo};

#[derive(Default)]
struct Recorder {
    /// (component, route, path, status) of every call that answered.
    calls: Mutex<Vec<(String, String, String, u16)>>,
}

impl CallHook for Recorder {
    fn before(&self, call: &CallView<'_>) -> Option<http::Response<Bytes>> {
        (call.uri.path() == "/hello/cached")
            .then(|| http::Response::new(Bytes::from_static(b"from the hook\n")))
    }

    fn after(&self, call: &CallView<'_>, outcome: &Outcome) {
        self.calls.lock().unwrap().push((
            call.component.to_string(),
            call.route.to_string(),
            call.uri.path().to_string(),
            outcome.response.status().as_u16(),
        ));
    }
}

#[test]
fn hooks_see_every_call_and_may_answer_before_it() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        nebula::manifest::Manifest::load(&repo().join("host/tests/apps/probe.toml")).unwrap();
    let mut app = nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.path().join("p.db"))),
            cache_dir: Some(repo().join("target/nebula-test-cache")),
            ..Default::default()
        },
    )
    .unwrap();
    let recorder = Arc::new(Recorder::default());
    app.add_hook(recorder.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |path: &str| {
        let req = http::Request::get(path).body(Bytes::new()).unwrap();
        rt.block_on(app.handle_with(req, 1, 1_000))
    };
    let called = get("/hello/world");
    assert_eq!(called.status(), 200);
    let hooked = get("/hello/cached");
    assert_eq!(hooked.body().as_ref(), b"from the hook\n");
    assert!(hooked.headers().contains_key("x-request-id"));
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![(
            "hello".to_string(),
            "/hello/*rest".to_string(),
            "/hello/world".to_string(),
            200
        )],
        "the hooked request never reached the component"
    );
}
