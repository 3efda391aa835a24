//! `spin registry push` to a platform: the admin listener takes an OCI push
//! (with `oci-client`, the library Spin's push is built on, assembling the
//! artifact as Spin's `push_locked_core` does) and serves the Spin app in it
//! for the repository's name as `Host`.

use std::collections::HashMap;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::config::{Architecture, ConfigFile, Os};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{json, Value};

use crate::platform::Platform;
use crate::support::{agent, nebula_build, repo, Resp};

const SPIN_APP: &str = "application/vnd.fermyon.spin.application.v1+config";
const WASM: &str = "application/vnd.wasm.content.layer.v1+wasm";
const DATA: &str = "application/vnd.wasm.content.layer.v1+data";

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(repo().join(format!("guests/target/wasm32-wasip2/release/{name}.wasm")))
        .unwrap_or_else(|e| panic!("{name}.wasm: {e}"))
}

fn v7_wasm() -> Vec<u8> {
    std::fs::read(repo().join("guests/spin-compat/target/wasm32-wasip2/release/sdk_v7.wasm"))
        .expect("sdk_v7.wasm")
}

/// What Spin's loader and push make of an app with the spin-sdk 7
/// component (two routes, two variables) and the files probe with a page
/// (its own layer) and a small file (inline, as Spin inlines ≤ 128 bytes).
fn locked_app(greeting: &str, v7: &[u8], probe: &[u8], page: &[u8]) -> Value {
    use base64::Engine;
    json!({
        "spin_lock_version": 1,
        "metadata": {
            "name": "pushed",
            "version": "0.1.0",
            "authors": ["Nebula <nebula@example.invalid>"],
            "triggers": {},
            "trigger": {"type": "http"}
        },
        "variables": {
            "greeting": {"default": greeting},
            "api_key": {"default": "pushed-secret", "secret": true}
        },
        "triggers": [
            {"id": "trigger-sdk-v7", "trigger_type": "http", "trigger_config": {"component": "sdk-v7", "route": "/hello"}},
            {"id": "trigger-sdk-v7-1", "trigger_type": "http", "trigger_config": {"component": "sdk-v7", "route": "/vars"}},
            {"id": "trigger-files", "trigger_type": "http", "trigger_config": {"component": "files", "route": "/files/..."}}
        ],
        "components": [
            {
                "id": "sdk-v7",
                "metadata": {"allowed_outbound_hosts": [], "key_value_stores": ["default"], "databases": []},
                "source": {"content_type": "application/wasm", "digest": digest(v7)},
                "config": {"greeting": "{{ greeting }}", "api_key": "{{ api_key }}"}
            },
            {
                "id": "files",
                "metadata": {"allowed_outbound_hosts": []},
                "source": {"content_type": "application/wasm", "digest": digest(probe)},
                "files": [
                    {"digest": digest(page), "path": "index.html"},
                    {"inline": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"tiny"), "digest": digest(b"tiny"), "path": "docs/tiny.txt"}
                ]
            }
        ]
    })
}

/// Pushes `locked` with the blobs it names, as `spin registry push` does.
fn push(
    registry: &str,
    name_tag: &str,
    token: &str,
    locked: &Value,
    blobs: &[(&[u8], &str)],
    monolithic: bool,
) -> Result<String, String> {
    let mut layers: Vec<ImageLayer> = blobs
        .iter()
        .map(|(b, t)| ImageLayer::new(b.to_vec(), t.to_string(), None))
        .collect();
    let locked_layer = ImageLayer::new(
        serde_json::to_vec(locked).unwrap(),
        SPIN_APP.to_string(),
        None,
    );
    let mut labels = HashMap::new();
    labels.insert(
        "com.fermyon.spin.lockedAppDigest".to_string(),
        locked_layer.sha256_digest(),
    );
    layers.push(locked_layer);
    let config = Config::oci_v1_from_config_file(
        ConfigFile {
            architecture: Architecture::Wasm,
            os: Os::Other("Wasip1".to_string()),
            config: Some(oci_client::config::Config {
                labels: Some(labels),
                ..Default::default()
            }),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let manifest = OciImageManifest::build(&layers, &config, None);
    // reqwest's rustls wants a provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..Default::default()
    });
    let reference: Reference = format!("{}/{name_tag}", registry.trim_start_matches("http://"))
        .parse()
        .unwrap();
    let auth = RegistryAuth::Basic("anyone".into(), token.into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.push(&reference, &layers, config, &auth, Some(manifest)))
        .map(|r| r.manifest_url)
        .map_err(|e| e.to_string())
}

fn raw(method: &str, url: &str, token: &str, body: &[u8]) -> Resp {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .body(body.to_vec())
        .unwrap();
    Resp::from(agent().run(req).expect("registry call"))
}

#[test]
fn spin_registry_push_deploys_the_app_for_its_repository_name() {
    nebula_build("guests/spin-compat/sdk-v7/spin.toml");
    nebula_build("host/tests/apps/spin-outbound.toml");
    let (v7, probe) = (v7_wasm(), wasm("spin_files_probe"));
    let page = vec![b'p'; 300];
    let p = Platform::start(tempfile::tempdir().unwrap(), &[]);
    let alice = p.tenant("alice");
    let bob = p.tenant("bob");
    let blobs: [(&[u8], &str); 3] = [(&v7, WASM), (&probe, WASM), (&page, DATA)];

    // Chunked upload (oci-client's default), then a monolithic one.
    let url = push(
        &p.admin,
        "pushed.test:v1",
        &alice,
        &locked_app("bonjour", &v7, &probe, &page),
        &blobs,
        false,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    assert!(url.contains("/v2/pushed.test/manifests/sha256:"), "{url}");
    let r = p.get("pushed.test", "/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), p.log());
    assert_eq!(r.text(), "hello from spin-sdk v7");
    assert_eq!(
        p.get("pushed.test", "/vars").text(),
        "greeting=bonjour\nsecret_len=13"
    );
    // The files, as mounted: the page from its layer, the inline one.
    assert_eq!(
        p.get("pushed.test", "/files/?list").text(),
        "/docs/tiny.txt\n/index.html"
    );
    assert_eq!(
        p.get("pushed.test", "/files/?open=/index.html").text(),
        "found 300 bytes"
    );
    let app = p.admin("GET", "/apps/pushed.test", &alice, b"").json();
    assert_eq!(app["version"], 1, "{app}");

    push(
        &p.admin,
        "pushed.test:v2",
        &alice,
        &locked_app("salut", &v7, &probe, &page),
        &blobs,
        true,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    assert_eq!(
        p.get("pushed.test", "/vars").text(),
        "greeting=salut\nsecret_len=13"
    );
    assert_eq!(
        p.admin("GET", "/apps/pushed.test", &alice, b"").json()["version"],
        2
    );

    // Refused, each with a clear error, and version 2 keeps serving:
    let refused = |name_tag: &str, token: &str, locked: &Value| {
        push(&p.admin, name_tag, token, locked, &blobs, false).unwrap_err()
    };
    let app_x = locked_app("x", &v7, &probe, &page);
    // a wrong token;
    let e = refused("pushed.test:v3", "nbt_wrong", &app_x);
    assert!(e.contains("401"), "{e}");
    // a host another tenant holds;
    let e = refused("pushed.test:v3", &bob, &app_x);
    assert!(e.contains("409") && e.contains("another tenant"), "{e}");
    // an app that fails `nebula check` (a route to no component);
    let mut broken = app_x.clone();
    broken["triggers"][0]["trigger_config"]["component"] = json!("nowhere");
    let e = refused("pushed.test:v3", &alice, &broken);
    assert!(e.contains("422") && e.contains("nowhere"), "{e}");
    // an artifact that is not a Spin app;
    let e = refused("pushed.test:v3", &alice, &json!({"not": "an app"}));
    assert!(e.contains("400") && e.contains("metadata.name"), "{e}");
    // a repository name that is no host name.
    let e = refused("org/pushed.test:v3", &alice, &app_x);
    assert!(e.contains("NAME_INVALID"), "{e}");

    // By hand: a blob that does not hash to its digest, and a manifest
    // naming a blob never uploaded.
    let base = &p.admin;
    let r = raw(
        "POST",
        &format!("{base}/v2/pushed.test/blobs/uploads/"),
        &alice,
        b"",
    );
    assert_eq!(r.status, 202);
    let at = r.header("location").unwrap().to_string();
    let r = raw(
        "PUT",
        &format!("{base}{at}?digest={}", digest(b"other")),
        &alice,
        b"these bytes",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "DIGEST_INVALID");
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(b"{}"), "size": 2},
        "layers": [{"mediaType": SPIN_APP, "digest": digest(b"missing"), "size": 7}]
    });
    let r = raw(
        "PUT",
        &format!("{base}/v2/pushed.test/manifests/v9"),
        &alice,
        manifest.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    // Uploads are the tenant's own: bob cannot see alice's blob.
    let r = raw(
        "POST",
        &format!(
            "{base}/v2/mine.test/blobs/uploads/?digest={}",
            digest(b"a blob")
        ),
        &alice,
        b"a blob",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let blob = format!("{base}/v2/mine.test/blobs/{}", digest(b"a blob"));
    assert_eq!(raw("HEAD", &blob, &alice, b"").status, 200);
    assert_eq!(raw("HEAD", &blob, &bob, b"").status, 404);

    let r = p.get("pushed.test", "/vars");
    assert_eq!(r.text(), "greeting=salut\nsecret_len=13");
    assert_eq!(
        p.admin("GET", "/apps/pushed.test", &alice, b"").json()["version"],
        2
    );
    // The pushed app is an app like any other: rolled back over the API.
    let r = p.admin("POST", "/apps/pushed.test/rollback", &alice, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        p.get("pushed.test", "/vars").text(),
        "greeting=bonjour\nsecret_len=13"
    );
}
