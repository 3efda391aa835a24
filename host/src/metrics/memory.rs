//! The largest linear memory an instance grew to, tracked where wasmtime
//! asks for permission to grow it: the store's resource limiter.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits};

/// [`StoreLimits`] (the caps) plus the peak of what the guest asked for and
/// was allowed.
pub struct PeakLimits {
    limits: StoreLimits,
    peak: usize,
    /// A component-wide peak to raise as well (Spin instances outlive a
    /// request, so their peak is published as it happens).
    shared: Option<Arc<super::ComponentStats>>,
}

impl PeakLimits {
    pub fn new(limits: StoreLimits, shared: Option<Arc<super::ComponentStats>>) -> PeakLimits {
        PeakLimits {
            limits,
            peak: 0,
            shared,
        }
    }

    /// The largest linear memory (in bytes) any memory of the store reached.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

impl ResourceLimiter for PeakLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed && desired > self.peak {
            self.peak = desired;
            if let Some(shared) = &self.shared {
                shared.memory(desired);
            }
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
