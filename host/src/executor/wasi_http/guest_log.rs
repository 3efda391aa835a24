//! A wasi:http guest's stdout and stderr, as log lines carrying the id of
//! the request it is serving: the same as a pure guest's output, so one
//! request can be followed through the log whatever kind of component ran
//! it. A reused (WASI 0.3) instance may serve several requests at once;
//! its output is then charged to the latest one, as its CPU is.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A line longer than this is logged in pieces, so a guest that never
/// writes a newline cannot grow the host's memory.
const MAX_LINE: usize = 16 * 1024;

/// Bytes the guest may write at once.
const WRITE_BUDGET: usize = 64 * 1024;

/// The id of the request an instance is serving, set by its worker.
#[derive(Clone, Default)]
pub struct CurrentRequest(Arc<Mutex<Option<Arc<str>>>>);

impl CurrentRequest {
    pub fn set(&self, id: Arc<str>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    pub fn get(&self) -> Arc<str> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| Arc::from("-"))
    }
}

/// One of a guest's output streams; every handle the guest opens on it
/// shares one line buffer.
#[derive(Clone)]
pub struct GuestLog(Arc<Mutex<Lines>>);

struct Lines {
    component: Arc<str>,
    stream: &'static str,
    current: CurrentRequest,
    pending: Vec<u8>,
}

impl GuestLog {
    /// The stream to give `WasiCtxBuilder::stdout`/`stderr`. Writing is
    /// synchronous (a log line), so unlike a pipe it needs no task.
    pub fn stream(component: &str, stream: &'static str, current: CurrentRequest) -> GuestLog {
        GuestLog(Arc::new(Mutex::new(Lines {
            component: Arc::from(component),
            stream,
            current,
            pending: Vec::new(),
        })))
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.pending.extend_from_slice(bytes);
        lines.emit_complete_lines();
    }

    fn finish(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).emit_rest();
    }
}

impl Lines {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        tracing::info!(
            request = %self.current.get(),
            component = %self.component,
            stream = self.stream,
            "{line}"
        );
    }

    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        while self.pending.len() >= MAX_LINE {
            let piece: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            self.emit(&piece);
        }
    }

    fn emit_rest(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.emit_rest();
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finish();
        Poll::Ready(Ok(()))
    }
}
