//! Engine settings. Per-request instantiation is only cheap with the pooling
//! allocator: memories, tables and fiber stacks are reserved once and reused,
//! with copy-on-write images for initial memory contents. What a slot keeps
//! resident between uses is sized to what guests really touch, so dropping an
//! instance is a memset rather than an madvise and a round of page faults.

use std::sync::Mutex;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Instances that may exist at once (one per request in flight).
    pub max_instances: u32,
    /// Largest linear memory a guest may grow to.
    pub max_memory_bytes: usize,
    /// How much of each memory slot stays resident (and is memset) between uses.
    pub keep_resident_bytes: usize,
    /// The component model's async ABI. Spin's WASI 0.3 components need it;
    /// pure components do not, and it costs ~3 µs per call (benches/RESULTS.md).
    pub concurrency: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: 256,
            max_memory_bytes: 64 << 20,
            keep_resident_bytes: 1 << 20,
            concurrency: true,
        }
    }
}

/// Core module instances one component instance may need. Counted with
/// `wasm-tools print`: a Rust guest instantiates 3 (its module and two
/// adapter shims), a jco/componentize-js guest 4, a componentize-py guest 14
/// (CPython, libc and its other shared libraries, linked at instantiation).
/// The pool only counts core instances (no memory is reserved per slot), so a
/// generous bound costs nothing; memories and tables, which do reserve
/// address space, stay at what every one of these guests uses (1 and 2).
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

pub fn new_engine(opts: &EngineOptions) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(opts.max_instances)
        .total_core_instances(opts.max_instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(opts.max_instances * 2)
        .total_tables(opts.max_instances * 4)
        .total_stacks(opts.max_instances)
        .max_memory_size(opts.max_memory_bytes)
        .linear_memory_keep_resident(opts.keep_resident_bytes)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(opts.max_instances.min(64));

    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        // Deadlines: the store traps when the epoch passes its deadline. The
        // epoch only advances while calls are in flight (see `deadline`).
        .epoch_interruption(true)
        // Spin components built by today's SDK use WASI 0.3 (async ABI).
        .wasm_component_model_async(opts.concurrency)
        .concurrency_support(opts.concurrency)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// An engine made on its own thread from the start of a process, with the
/// options the command line implies, while the main thread reads the
/// manifest: the engine is the costliest step of a start (its pool reserves
/// and guards every slot, ~1 ms) and the manifest only rarely changes what
/// it needs. The host takes it only if it was made with exactly the options
/// the app resolves to; otherwise it makes its own.
pub struct EarlyEngine {
    opts: EngineOptions,
    making: Mutex<Option<JoinHandle<Result<Engine>>>>,
}

impl EarlyEngine {
    /// Starts making an engine with `opts` on a thread `nebula-engine`.
    pub fn start(opts: EngineOptions) -> Result<EarlyEngine> {
        let for_thread = opts.clone();
        let making = std::thread::Builder::new()
            .name("nebula-engine".into())
            .spawn(move || new_engine(&for_thread))
            .context("cannot start a thread to make the wasmtime engine")?;
        Ok(EarlyEngine {
            opts,
            making: Mutex::new(Some(making)),
        })
    }

    /// The engine, if it was made for exactly `wanted` and not taken yet.
    /// Otherwise `None`, once the thread has ended: an engine made for
    /// other options is dropped, and the CPU it took falls within the start
    /// (`metrics::cpu::serving_started`) like the rest of it.
    pub fn take(&self, wanted: &EngineOptions) -> Option<Result<Engine>> {
        let making = self.making.lock().ok()?.take()?;
        let made = making
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (self.opts == *wanted).then_some(made)
    }
}

impl std::fmt::Debug for EarlyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyEngine")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_instances: u32) -> EngineOptions {
        EngineOptions {
            max_instances,
            max_memory_bytes: 1 << 20,
            keep_resident_bytes: 64 << 10,
            concurrency: false,
        }
    }

    #[test]
    fn an_early_engine_is_taken_once_and_only_for_the_options_it_was_made_with() {
        let early = EarlyEngine::start(small(2)).unwrap();
        let engine = early.take(&small(2)).expect("same options").unwrap();
        // It is a working engine: a component compiles on it.
        let wasm = wat::parse_str("(component)").unwrap();
        wasmtime::component::Component::new(&engine, wasm).unwrap();
        assert!(early.take(&small(2)).is_none(), "taken twice");

        let early = EarlyEngine::start(small(2)).unwrap();
        assert!(early.take(&small(3)).is_none(), "other max_instances");
        let early = EarlyEngine::start(small(2)).unwrap();
        let spin = EngineOptions {
            concurrency: true,
            ..small(2)
        };
        assert!(early.take(&spin).is_none(), "the async ABI differs");
    }
}
