//! Engine settings. Per-request instantiation is only cheap with the pooling
//! allocator: memories, tables and fiber stacks are reserved once and reused,
//! with copy-on-write images for initial memory contents. What a slot keeps
//! resident between uses is sized to what guests really touch, so dropping an
//! instance is a memset rather than an madvise and a round of page faults.

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

#[derive(Debug, Clone)]
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
