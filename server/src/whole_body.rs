//! [`WholeBody`]: a gRPC client connection that sends each unary request in two writes
//! instead of three.
//!
//! tonic hands a request's message to HTTP/2 as a stream of one item. hyper cannot know
//! that the stream has ended until it polls it again, which it does only after flushing
//! what it has: a unary call goes out as three writes (`HEADERS`; `DATA` with the message;
//! an empty `DATA` that ends the stream), three TCP segments and three wake-ups of the
//! receiver. Measured with `strace` on a 3-node cluster: every forwarded `Put`, every Raft
//! message between nodes and every client request went out this way.
//!
//! [`WholeBody`] reads the body whole before the call (for a unary call it is already
//! there: encoding it is the first poll) and hands hyper a body that reports its end with
//! its one frame, so the message goes in one `DATA` frame that ends the stream. It still
//! follows `HEADERS` in a write of its own (`strace` of `elastickv-load`, hyper 1.12 and
//! h2 0.4.20, 2026-12-02): h2 gives a new stream send capacity only once its connection
//! task has opened it, after it flushed the `HEADERS`, and hyper waits for capacity
//! before it hands over the data. [`crate::one_write::OneWriteChannel`] drives HTTP/2
//! itself and sends both in one write; the Rust client and the load generator use it.
//! Node-to-node channels ([`crate::peers`]) still use this wrapper: they share their
//! connection with the Raft streams and need tonic's keep-alive pings and source
//! address. Only for services whose requests are unary: a client-streaming request
//! would be held until the client finished it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::transport::Channel;

/// A channel whose unary requests are each written at once (see the module documentation).
pub type WholeBodyChannel = WholeBody<Channel>;

/// Wraps `channel` (cheap: a channel is a handle).
pub fn whole_body(channel: Channel) -> WholeBodyChannel {
    WholeBody { inner: channel }
}

/// A client service that buffers each request's body (see the module documentation).
#[derive(Debug, Clone)]
pub struct WholeBody<S> {
    inner: S,
}

impl<S> WholeBody<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        WholeBody { inner }
    }

    /// The wrapped service (for streaming calls, whose bodies must not be collected).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, RB> Service<http::Request<Body>> for WholeBody<S>
where
    S: Service<http::Request<Body>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The service made ready by `poll_ready` is the one that must take the call; a
        // clone stays behind for the next one.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => Body::new(http_body_util::Full::new(collected.to_bytes())),
                // Encoding failed (e.g. the message exceeds the encoding limit): hand
                // the error on, so the call fails as it would have without this layer.
                Err(status) => Body::new(Failed(Some(status))),
            };
            ready.call(http::Request::from_parts(parts, body)).await
        })
    }
}

/// A body whose only frame is an error.
struct Failed(Option<tonic::Status>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body::Body as _;

    use super::*;

    /// What a call's body looked like on arrival (its exact length, if known) and what
    /// reading it gave.
    type Seen = (Option<u64>, Result<Vec<u8>, String>);

    /// A stand-in for the channel: records what each call's body looked like when it
    /// arrived, then reads it.
    #[derive(Clone, Default)]
    struct Capture {
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Service<http::Request<Body>> for Capture {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let seen = Arc::clone(&self.seen);
            Box::pin(async move {
                let body = request.into_body();
                let exact = body.size_hint().exact();
                let read = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes().to_vec())
                    .map_err(|status| status.message().to_string());
                seen.lock().unwrap().push((exact, read));
                Ok(http::Response::new(()))
            })
        }
    }

    /// A streamed body, the way tonic hands over a request: its end is only known
    /// after another poll.
    fn streamed(chunks: Vec<Result<&'static [u8], tonic::Status>>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| c.map(|b| http_body::Frame::data(Bytes::from_static(b))));
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    #[tokio::test]
    async fn the_body_reaches_the_channel_whole_with_its_length_known() {
        let capture = Capture::default();
        let mut service = WholeBody::new(capture.clone());
        let body = streamed(vec![Ok(b"\0\0\0\0\x03"), Ok(b"abc")]);
        assert_eq!(body.size_hint().exact(), None);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        service
            .call(http::Request::new(body))
            .await
            .expect("the call goes through");
        let seen = capture.seen.lock().unwrap().clone();
        assert_eq!(seen, vec![(Some(8), Ok(b"\0\0\0\0\x03abc".to_vec()))]);
    }

    #[tokio::test]
    async fn a_body_that_fails_to_encode_still_fails_the_call() {
        let capture = Capture::default();
        let mut service = WholeBody::new(capture.clone());
        let body = streamed(vec![Err(tonic::Status::out_of_range("message too large"))]);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        service.call(http::Request::new(body)).await.unwrap();
        let seen = capture.seen.lock().unwrap().clone();
        assert_eq!(seen, vec![(None, Err("message too large".to_string()))]);
    }
}
