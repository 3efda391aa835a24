//! Swapping a component in a running app (what `nebula up --watch` does
//! after a rebuild): a request already running finishes on the version it
//! started with; the next request gets the new one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{build_guests, guest_wasm as wasm};

fn load(dir: &Path, source: &Path) -> Arc<nebula::app::App> {
    let file = dir.join("app.toml");
    std::fs::write(
        &file,
        format!(
            "[app]\nname = \"swap\"\n\n[components.live]\nsource = {:?}\n\n[[routes]]\npath = \"/live\"\ncomponent = \"live\"\n",
            source.display().to_string()
        ),
    )
    .unwrap();
    let manifest = nebula::manifest::Manifest::load(&file).unwrap();
    let app = nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.join("swap.db"))),
            cache_dir: Some(dir.join("cache")),
            timeout: Duration::from_secs(120),
            engine: nebula::executor::EngineOptions {
                max_instances: 1,
                ..Default::default()
            },
            queue_size: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    Arc::new(app)
}

fn get(path: &str) -> nebula::app::HttpRequest {
    http::Request::get(path).body(bytes::Bytes::new()).unwrap()
}

#[test]
fn a_request_in_flight_finishes_on_the_old_version_and_the_next_gets_the_new() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    // Compile the new version into the cache first, so the swap itself is
    // quick and the slow request below is sure to outlast it.
    std::fs::copy(wasm("hello"), &live).unwrap();
    drop(load(dir.path(), &live));
    std::fs::copy(wasm("hog"), &live).unwrap();
    let app = load(dir.path(), &live);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = app.handle(get("/live")).await;
        assert_eq!(before.body().as_ref(), b"ok\n", "the old version (hog)");

        // One slot and no queue: once a quick request is turned away, the
        // slow one holds the slot, and with it the component it runs. (A
        // quick one may hold it just when the slow one arrives: then the
        // slow one is turned away and sent again.)
        let spawn_slow = || {
            let app = app.clone();
            tokio::spawn(async move { app.handle(get("/live?mode=busy&n=1500")).await })
        };
        let mut slow = spawn_slow();
        let waited = Instant::now();
        loop {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the slow request never started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
            if slow.is_finished() {
                slow = spawn_slow();
            } else if app.handle(get("/live")).await.status() == 503 {
                break;
            }
        }

        std::fs::copy(wasm("hello"), &live).unwrap();
        app.swap_component("live").unwrap();
        assert!(
            !slow.is_finished(),
            "the slow request ended before the swap was done; make it slower"
        );
        let old = slow.await.unwrap();
        assert_eq!(old.status(), 200);
        let old_body = String::from_utf8_lossy(old.body()).to_string();
        assert!(
            old_body.starts_with("busy done "),
            "the request in flight must finish on the old version: {old_body:?}"
        );

        let after = app.handle(get("/live?mode=busy&n=1500")).await;
        assert_eq!(after.status(), 200);
        let new_body = String::from_utf8_lossy(after.body()).to_string();
        assert!(
            new_body.starts_with("hello from a pure function"),
            "the next request must get the new version: {new_body:?}"
        );
    });
}
