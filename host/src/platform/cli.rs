//! `nebula platform …` and `nebula deploy`: the operator's and the tenant's
//! commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::bundle::UnpackLimits;
use super::slot::Ceilings;
use super::tenants::Tenants;
use super::{Platform, PlatformOptions};
use crate::app::AnyManifest;
use crate::web::rate_limit::RateLimit;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlatformArgs {
    #[command(subcommand)]
    pub action: Option<PlatformAction>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(clap::Subcommand)]
pub enum PlatformAction {
    /// Manage the tenants who may deploy.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
}

#[derive(clap::Subcommand)]
pub enum TenantAction {
    /// Create a tenant and print its token (shown this once; only its hash is kept).
    Add {
        name: String,
        /// The platform's folder.
        #[arg(long)]
        dir: PathBuf,
        /// The platform's PostgreSQL store, if its nodes share one.
        #[arg(long, env = "NEBULA_PLATFORM_STORE")]
        store: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The platform's folder: tenants, apps and their versions, data, compile caches.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where apps are served (routed by Host header, or /HOST/… locally).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// The admin API's address (deploy, list, roll back, delete); loopback
    /// unless --admin-public.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    #[arg(long, requires = "admin")]
    pub admin_public: bool,
    /// Unload an app idle this long (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub unload_after: f64,
    /// Ceiling of any one app's instances at once (its manifest may ask for fewer).
    #[arg(long, default_value_t = 64)]
    pub max_instances_per_app: u32,
    /// Instance slots shared by all apps.
    #[arg(long, default_value_t = 512)]
    pub pool_instances: u32,
    /// Ceiling of any one instance's memory, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_memory_mb: usize,
    /// Ceiling of any one request's deadline, in ms.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Ceiling of any one app's data (its SQLite file), in MiB: a write that
    /// would outgrow it gets 507 and writes nothing; a bundle whose schema
    /// and seed do not fit is refused. Not enforced with --store (PostgreSQL).
    #[arg(long, value_name = "MIB")]
    pub max_storage_mb: Option<u64>,
    /// Requests any one app may get from everyone together, e.g. "1000/s"
    /// (its Redis messages count too).
    #[arg(long)]
    pub max_rate_per_app: Option<String>,
    /// Ceiling of an app bundle, unpacked, in MiB.
    #[arg(long, default_value_t = 128)]
    pub max_bundle_mb: u64,
    /// Several nodes: a PostgreSQL URL where tenants, apps, bundles and the
    /// apps' data live (each node keeps a copy of what it serves in --dir).
    #[arg(long, env = "NEBULA_PLATFORM_STORE")]
    pub store: Option<String>,
    /// A Redis server apps' `[[trigger.redis]]` may subscribe to, e.g.
    /// "redis://127.0.0.1:6379" (repeat for more). Bundles with triggers on
    /// any other address are refused: tenants cannot make the platform
    /// connect where they like.
    #[arg(long = "allow-redis", value_name = "ADDR")]
    pub allow_redis: Vec<String>,
    /// Components kept mapped after their apps unload, at most: a reload
    /// within that many distinct components does not map its code again.
    /// All are let go once no app has been loaded for --unload-after.
    /// 0 keeps none.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub keep_mapped: usize,
    /// Idle seconds after which the whole process trims its memory (off by default).
    #[arg(long)]
    pub idle_trim: Option<f64>,
}

/// `nebula platform tenant add`.
pub fn tenant(action: TenantAction) -> Result<()> {
    match action {
        TenantAction::Add { name, dir, store } => {
            let token = match store {
                Some(url) => {
                    let store = super::shared_store::SharedStore::new(&url)?;
                    let (tenant, token) = super::tenants::Tenant::new(&name)?;
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(async {
                            store.init().await?;
                            store.add_tenant(&tenant).await
                        })?;
                    token
                }
                None => Tenants::add(&dir, &name)?,
            };
            println!("{token}");
            eprintln!(
                "tenant {name:?} added to {}; this token is shown once: keep it",
                dir.display()
            );
            Ok(())
        }
    }
}

impl ServeArgs {
    pub fn options(&self) -> Result<PlatformOptions> {
        let Some(dir) = self.dir.clone() else {
            bail!("say where the platform keeps its apps: nebula platform --dir DIR");
        };
        if self.unload_after.is_nan() || self.unload_after < 0.0 {
            bail!(
                "--unload-after {}: give a number of seconds, 0 or more",
                self.unload_after
            );
        }
        let max_rate_per_app = self
            .max_rate_per_app
            .as_deref()
            .map(RateLimit::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--max-rate-per-app: {e}"))?;
        Ok(PlatformOptions {
            dir,
            unload_after: Duration::from_secs_f64(self.unload_after),
            ceilings: Ceilings {
                max_instances: self.max_instances_per_app.max(1),
                max_memory_bytes: self.max_memory_mb.max(1) << 20,
                timeout: Duration::from_millis(self.timeout_ms.max(1)),
                max_storage_bytes: self.max_storage_mb.map(|mb| mb.max(1) << 20),
            },
            pool_instances: self.pool_instances.max(self.max_instances_per_app).max(1),
            max_rate_per_app,
            bundle_limits: UnpackLimits {
                max_bytes: self.max_bundle_mb << 20,
                max_files: 10_000,
            },
            store: self.store.clone(),
            redis_allowed: self.allow_redis.clone(),
            keep_mapped: self.keep_mapped,
        })
    }
}

/// Opens the platform and serves it until SIGTERM or Ctrl-C.
pub fn serve(
    args: &ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if let Some(admin) = args.admin {
        crate::server::admin::check_address(admin, args.admin_public)?;
    }
    let opts = args.options()?;
    use crate::metrics::cpu::{self, Background};
    let rt = cpu::instrument(&mut tokio::runtime::Builder::new_multi_thread())
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let platform = tokio::task::spawn_blocking(move || Platform::open(opts))
            .await
            .context("opening the platform panicked")??;
        tokio::spawn(platform.clone().follow_store());
        let listener = match crate::server::activation::inherited_listener()? {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?,
        };
        if let Some(admin) = args.admin {
            let admin_listener = tokio::net::TcpListener::bind(admin)
                .await
                .with_context(|| format!("cannot listen on {admin} (--admin)"))?;
            println!("Admin API at http://{}/apps", admin_listener.local_addr()?);
            tokio::spawn(super::admin_api::serve(admin_listener, platform.clone()));
        }
        println!(
            "Serving {} apps from {} at http://{}/",
            platform.slots().len(),
            platform.registry().dir().display(),
            listener.local_addr()?
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        cpu::serving_started();
        tokio::spawn(platform.clone().unload_idle_apps());
        let idle = crate::server::idle::IdlePolicy {
            trim: args
                .idle_trim
                .filter(|s| *s >= 0.0)
                .map(Duration::from_secs_f64),
            exit: None,
        };
        let server = crate::server::serve(
            listener,
            platform,
            shutdown,
            idle,
            crate::server::ConnectionLimits::default(),
        );
        tokio::spawn(cpu::background(Background::Accept, server))
            .await
            .context("the server task failed")?
    })
}

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The app's manifest (app.toml or spin.toml).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The platform's admin API, e.g. http://127.0.0.1:9200.
    #[arg(long)]
    pub to: String,
    /// Your tenant token (or NEBULA_TOKEN).
    #[arg(long, env = "NEBULA_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The host name the app is served for.
    #[arg(long)]
    pub host: String,
    /// Do not build first.
    #[arg(long)]
    pub no_build: bool,
}

/// `nebula deploy`: builds what is stale, bundles the app and uploads it.
pub fn deploy(args: &DeployArgs, manifest: PathBuf) -> Result<()> {
    super::registry::valid_host(&args.host).map_err(anyhow::Error::msg)?;
    if !args.no_build {
        match AnyManifest::load(&manifest)? {
            AnyManifest::Pure(m) => crate::builder::build(&m, &[], true)?,
            AnyManifest::Spin(m) => crate::builder::build_spin(&m, &[], true)?,
        }
    }
    let bundle = super::bundle::pack(&manifest)?;
    let url = format!("{}/apps?host={}", args.to.trim_end_matches('/'), args.host);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let mut resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {}", args.token))
        .header("Content-Type", "application/gzip")
        .send(&bundle[..])
        .with_context(|| format!("cannot reach the platform at {}", args.to))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status.is_success() {
        println!(
            "deployed {} version {} ({} bytes)",
            args.host,
            parsed["version"],
            bundle.len()
        );
        Ok(())
    } else {
        let message = parsed["error"].as_str().unwrap_or(body.as_str());
        bail!("the platform refused the deploy ({status}):\n{message}")
    }
}
