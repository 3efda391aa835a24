//! A write timeout for a connection's socket. hyper has none: a client that
//! sends requests and never reads the answers fills its socket buffers, and
//! hyper's write then waits forever, holding the connection (a descriptor, a
//! `max_connections` permit) and the response it is writing (for a Spin app,
//! the response body's instance slot). [`WriteTimeout`] fails a write, flush
//! or shutdown that has been blocked for longer than its timeout with
//! `TimedOut`, which ends the connection.
//!
//! The clock runs only while a write is blocked, and restarts with every write
//! that makes progress: a slow reader that keeps reading is served, one that
//! stops is cut off (nginx's `send_timeout` works the same way). A write that
//! is never blocked costs no timer at all.
//!
//! A connection cut off this way is reset rather than closed ([`Abort`]):
//! a plain close would leave what the client never read (megabytes, with
//! a big response) in the kernel's send buffer until the client reads it or
//! TCP gives up, long after the descriptor is gone.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What a connection does once its write timed out.
pub trait Abort {
    /// Makes the coming close discard unsent data and reset the connection.
    fn abort(&self);
}

impl Abort for tokio::net::TcpStream {
    fn abort(&self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt reads `linger`, a live local of the size
            // given, on a descriptor this stream owns. A zero linger never
            // blocks the close.
            unsafe {
                libc::setsockopt(
                    self.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    }
}

pub struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is blocked: when it started plus the timeout.
    /// Kept once made, so a connection that blocks often reuses its timer.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T: Abort> WriteTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> WriteTimeout<T> {
        WriteTimeout {
            inner,
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// What a write that returned `poll` means once the clock is counted:
    /// progress disarms the timer; a blocked write arms it (if it is not
    /// already running) and fails once it has run out.
    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let deadline = Instant::now() + self.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.inner.abort();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {} ms (write_timeout_ms)",
                        self.timeout.as_millis()
                    ),
                )))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Abort + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    impl Abort for DuplexStream {
        fn abort(&self) {}
    }

    #[tokio::test]
    async fn a_write_blocked_past_the_timeout_fails_with_timed_out() {
        // A 1 KiB pipe whose reader never reads.
        let (client, _server) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(client, Duration::from_millis(50));
        let big = vec![b'x'; 64 * 1024];
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), w.write_all(&big))
            .await
            .expect("the write gave up by itself")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_reader_that_keeps_reading_is_never_cut_off() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut w = WriteTimeout::new(client, Duration::from_millis(100));
        // The reader takes 1 KiB every 20 ms: each write waits, but each
        // wait is shorter than the timeout; the whole takes far longer.
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match server.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        w.write_all(&vec![b'x'; 16 * 1024]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 16 * 1024);
    }
}
