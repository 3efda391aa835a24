//! Caps on streamed bodies. A wasi:http component reads its request body as
//! a stream and writes its response as one, so the size and time limits that
//! a pure component's whole bodies are checked against up front are applied
//! here as the bytes pass: past the cap the stream ends in an error.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Why a capped stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    /// More than this many bytes.
    Size(u64),
    /// Not finished within this time.
    Time(Duration),
}

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapExceeded::Size(max) => write!(f, "body is over its limit of {max} bytes"),
            CapExceeded::Time(t) => {
                write!(f, "body not received within {} ms", t.as_millis())
            }
        }
    }
}

impl std::error::Error for CapExceeded {}

/// `inner`, ended with an error once it passes `max` bytes or `deadline`.
pub struct Capped<B> {
    inner: B,
    seen: u64,
    max: u64,
    /// Once cut, the stream has ended.
    cut: bool,
    deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    /// Held until the body is dropped: for a response body, the request's
    /// instance slot (the instance behind the stream is in use until the
    /// stream is done).
    _held: Option<Box<dyn std::any::Any + Send>>,
}

impl<B> Capped<B> {
    pub fn new(inner: B, max: u64) -> Capped<B> {
        Capped {
            inner,
            seen: 0,
            max,
            cut: false,
            deadline: None,
            _held: None,
        }
    }

    /// The whole body must arrive within `timeout` from now.
    pub fn within(mut self, timeout: Duration) -> Capped<B> {
        self.deadline = Some((timeout, Box::pin(tokio::time::sleep(timeout))));
        self
    }

    /// Keeps `guard` until the body is dropped.
    pub fn holding(mut self, guard: impl Send + 'static) -> Capped<B> {
        self._held = Some(Box::new(guard));
        self
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: From<CapExceeded>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.max {
                        this.cut = true;
                        return Poll::Ready(Some(Err(CapExceeded::Size(this.max).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let Some((timeout, sleep)) = &mut this.deadline else {
                    return Poll::Pending;
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let timeout = *timeout;
                this.deadline = None;
                this.cut = true;
                Poll::Ready(Some(Err(CapExceeded::Time(timeout).into())))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Err = Box<dyn std::error::Error + Send + Sync>;

    fn chunks(n: usize, size: usize) -> impl Body<Data = Bytes, Error = Err> + Unpin {
        StreamBody::new(futures::stream::iter(
            (0..n).map(move |_| Ok::<_, Err>(Frame::data(Bytes::from(vec![b'x'; size])))),
        ))
    }

    #[tokio::test]
    async fn a_body_within_the_cap_passes_whole() {
        let got = Capped::new(chunks(4, 10), 40).collect().await.unwrap();
        assert_eq!(got.to_bytes().len(), 40);
    }

    #[tokio::test]
    async fn past_the_cap_the_stream_ends_in_an_error() {
        let mut body = Capped::new(chunks(5, 10), 40);
        let mut passed = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(f)) => passed += f.into_data().unwrap().len(),
                Some(Err(e)) => break e,
                None => panic!("the stream ended without an error"),
            }
        };
        assert_eq!(passed, 40, "no byte past the cap is handed on");
        assert_eq!(
            err.downcast_ref::<CapExceeded>(),
            Some(&CapExceeded::Size(40))
        );
        assert!(body.frame().await.is_none(), "and nothing after the error");
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_ends_in_an_error() {
        let never = StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Err>>());
        let mut body = Capped::new(never, 1 << 20).within(Duration::from_millis(50));
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<CapExceeded>(),
            Some(&CapExceeded::Time(Duration::from_millis(50)))
        );
    }
}
