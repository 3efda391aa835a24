//! `academemes-native`: the benchmarks' ceiling. The same three workloads as
//! the Wasm hosts serve — `GET /hello`, the home page `GET /` and the vote
//! `POST /memes/:id/vote` — as a plain hyper server: app.toml's SQL on the
//! same SQLite file (WAL, a writer and a pool of readers, as Nebula's data
//! layer), the same markup (academemes-html), no Wasm.
//!
//! ```sh
//! academemes-native --manifest app.toml --db data/academemes.db --listen 127.0.0.1:3000
//! ```

mod db;
mod site;
mod sql;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::site::{Reply, Site};

#[derive(Parser)]
#[command(
    about = "Academemes' hello, home page and vote as a native hyper server (the benchmarks' ceiling)"
)]
struct Args {
    /// The Nebula manifest whose reads `newest`, `top`, `tags`, `meme` and write `vote` it runs.
    #[arg(long, default_value = "app.toml")]
    manifest: PathBuf,
    /// A database with the Academemes schema and data (the file `nebula up` creates).
    #[arg(long, default_value = "data/academemes.db")]
    db: PathBuf,
    /// Address to listen on (loopback); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let site = Arc::new(Site {
        sql: sql::Sql::from_manifest(&args.manifest)?,
        db: db::Database::open(&args.db)?,
    });
    // The same runtime Nebula uses: tokio's multi-threaded scheduler, one
    // worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(serve(args.listen, site))
}

async fn serve(listen: SocketAddr, site: Arc<Site>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "academemes-native listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let site = site.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(answer(&site, req)) }
            });
            // A connection error is the client's business (reset, timeout).
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(site: &Site, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let head = req.method() == hyper::Method::HEAD;
    let Reply {
        status,
        content_type,
        location,
        body,
    } = site.respond(req.method().as_str(), req.uri().path(), accept);
    let mut response = Response::builder().status(status);
    if let Some(ct) = content_type {
        response = response.header(hyper::header::CONTENT_TYPE, ct);
    }
    if let Some(location) = location {
        response = response.header(hyper::header::LOCATION, location);
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    response
        .body(Full::new(body))
        .expect("status and headers are valid")
}
