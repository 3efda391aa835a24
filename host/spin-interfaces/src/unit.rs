//! The shape every host interface takes: a [`HostUnit`].
//!
//! A unit is one host interface (all its WIT versions) with its state at the three levels
//! its life has: the app (backing files, resolved variables), the component (what its
//! manifest entry grants, checked once at load) and the instance (handles the guest has
//! open). Keeping these apart, as Spin's factors do, is what lets a unit be linked, tested
//! and replaced on its own, and lets one host (Spin apps and Nebula's own) take the units it
//! wants: no unit reads another's state or the host's store type.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::{Blocking, MAX_OPEN_HANDLES};

/// One host interface, from linking to a guest's call. See the crate docs ("Adding a host
/// interface") for how the host strings the steps together.
pub trait HostUnit: Sized + Send + Sync + 'static {
    /// What the app gives the unit once, from its manifest and runtime config.
    type AppConfig;
    /// What one component's manifest entry grants it (`key_value_stores = [...]`, …), with
    /// the component's own limits.
    type Grants;
    /// One component's grants, checked against the app; its instances share it.
    type Component: Send + Sync + 'static;
    /// One instance's state, kept in its store: what the guest has open.
    type Instance: Send + 'static;
    /// What the unit's host functions get from the store, as wasmtime's bindings take it:
    /// usually `HasSelf<Self::Instance>` (`&mut Self::Instance`); a unit served by a crate of
    /// wasmtime's (outbound HTTP) takes that crate's view.
    type Data: HasData;

    /// Adds the unit's interfaces to `linker`; once per linker, before any app is
    /// configured, so that linking depends on no app. `get` finds the unit's state in the
    /// store.
    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()>;

    /// Once per app: prepares what the app's components share. Fails on a problem in the
    /// app's configuration, naming it.
    fn configure_app(config: Self::AppConfig) -> anyhow::Result<Self>;

    /// Once per component, when the app loads: checks what its manifest entry grants, so
    /// that a mistake fails the load, not a request.
    fn configure_component(
        self: &Arc<Self>,
        grants: Self::Grants,
    ) -> anyhow::Result<Self::Component>;

    /// Once per instance (per request, for WASI 0.2 components): cheap, reference counts
    /// and empty tables.
    fn prepare(component: &Arc<Self::Component>, instance: &InstanceContext) -> Self::Instance;

    /// For `nebula check`: how this unit serves `import` (a full name such as
    /// `fermyon:spin/key-value@2.0.0`) to a component with `grants`, or `None` if the import
    /// is not the unit's.
    fn serves(import: &str, grants: &Self::Grants) -> Option<String>;
}

/// What the host gives every unit when it prepares one instance.
#[derive(Clone, Debug)]
pub struct InstanceContext {
    /// Where the instance's blocking work (SQLite statements) runs.
    pub(crate) blocking: Blocking,
    /// The instance's budget of open stores and connections, shared by the units.
    pub(crate) handles: OpenHandles,
}

impl InstanceContext {
    /// A fresh context for one instance. `blocking` runs its SQLite and key-value work: per
    /// instance, so that a host can charge it to the request the instance serves
    /// ([`Blocking::tokio`] if it does not).
    pub fn new(blocking: Blocking) -> Self {
        Self {
            blocking,
            handles: OpenHandles::default(),
        }
    }
}

/// The count of an instance's open handles, shared by the units that hand out handles: a
/// guest may hold [`MAX_OPEN_HANDLES`] key-value stores and SQLite connections *together*,
/// so the bound is the instance's, not each unit's.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpenHandles(Arc<AtomicUsize>);

impl OpenHandles {
    /// Whether the instance holds as many handles as it may.
    pub(crate) fn full(&self) -> bool {
        self.count() >= MAX_OPEN_HANDLES
    }

    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `package:name/interface` of an import name, without its `@version`.
pub fn interface_of(import: &str) -> &str {
    import.split('@').next().unwrap_or(import)
}

/// The Spin feature an import Nebula does not serve belongs to, if it is one
/// of Spin's: what a link error and `nebula check` name.
pub fn unsupported_feature(import: &str) -> Option<&'static str> {
    Some(match interface_of(import) {
        "fermyon:spin/llm" => "Serverless AI (fermyon:spin/llm): no model runtime in Nebula",
        i if i.starts_with("wasi:keyvalue/") => {
            "key-value through wasi:keyvalue (use Spin's key-value interface)"
        }
        i if i.starts_with("wasi:config/") => {
            "variables through wasi:config (use Spin's variables interface)"
        }
        i if i.starts_with("wasi:blobstore/") => "blob storage (wasi:blobstore)",
        i if i.starts_with("wasi:otel/") => "OpenTelemetry export from guests (wasi:otel)",
        "fermyon:spin/redis-types" => return None,
        // Spin 1.x imported its interfaces without a version.
        i if i.starts_with("fermyon:spin/") && !import.contains('@') => {
            "the Spin 1.x interfaces (unversioned fermyon:spin): rebuild with a Spin SDK of 2.0 or later"
        }
        _ => return None,
    })
}

/// A list of grants as `nebula check` prints it.
pub fn granted_list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none granted".to_string()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
