//! [`OneWriteChannel`]: a gRPC client connection that sends each unary request in one
//! write, its `HEADERS` and its `DATA` together.
//!
//! Through tonic's `Channel` (hyper), a unary request leaves in two writes even with its
//! body whole ([`crate::whole_body`]): h2 gives a new stream send capacity only once its
//! connection task has opened the stream, and hyper hands over the body only once the
//! stream has capacity, so the `HEADERS` are flushed alone first. Two writes are two TCP
//! segments, two passes through the kernel's loopback or network path and, when the
//! server reads between them, two wake-ups of the server for one request.
//!
//! This channel drives h2 itself: it opens the stream and queues the whole message,
//! ending the stream, in one step. When the connection task then opens the stream, it
//! assigns the stream capacity at once and writes the `HEADERS` and the `DATA` into the
//! same buffer, one write. (On a multi-threaded runtime the connection task may, if it
//! is running on another thread at that instant, flush the `HEADERS` first; measured,
//! that is rare: `strace` of the load generator at 256 clients counted 23,878 writes
//! for 23,880 responses read.) Responses come back as they do through hyper (the
//! response body is read frame by frame, with its trailers).
//!
//! The connection is opened on [`OneWriteChannel::connect`] and opened again, lazily,
//! by the first call after it closed (a server restart, a network error). A call that
//! finds the connection closed before it sent anything is made once more on a new
//! connection; a call whose request may have reached the server is not. Failing to
//! connect, and a connection lost under a call, are `Unavailable`.
//!
//! Only for unary and server-streaming calls: a request body is read whole before it is
//! sent, which a client-streaming call would not finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::{Code, Status};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The receive windows, as hyper's HTTP/2 client sets them (a stream's, the
/// connection's): large responses (scans) are not held back by 64 KiB windows.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// A gRPC client connection whose unary requests each go out in one write (see the
/// module documentation). Cheap to clone: clones share the connection, and take turns
/// on it as HTTP/2 streams.
#[derive(Clone)]
pub struct OneWriteChannel {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port`.
    addr: String,
    authority: http::uri::Authority,
    /// The open connection, if any, with its number.
    conn: Mutex<Option<Connection>>,
    /// Held while a connection is being opened, so that concurrent calls open one.
    connecting: tokio::sync::Mutex<()>,
    opened: AtomicU64,
}

#[derive(Clone)]
struct Connection {
    number: u64,
    send: SendRequest<Bytes>,
}

impl std::fmt::Debug for OneWriteChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneWriteChannel")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl OneWriteChannel {
    /// Opens a connection to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<OneWriteChannel, Status> {
        let channel = OneWriteChannel::lazy(addr)?;
        channel.connection().await?;
        Ok(channel)
    }

    /// A channel to `addr` (`host:port`) that connects on its first call.
    pub fn lazy(addr: &str) -> Result<OneWriteChannel, Status> {
        let authority = addr.parse::<http::uri::Authority>().map_err(|e| {
            Status::invalid_argument(format!("{addr:?} is not a host:port address: {e}"))
        })?;
        Ok(OneWriteChannel {
            shared: Arc::new(Shared {
                addr: addr.to_string(),
                authority,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                opened: AtomicU64::new(0),
            }),
        })
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Connection, Status> {
        if let Some(conn) = self.shared.conn.lock().clone() {
            return Ok(conn);
        }
        let _opening = self.shared.connecting.lock().await;
        if let Some(conn) = self.shared.conn.lock().clone() {
            return Ok(conn); // another call opened it meanwhile
        }
        let addr = &self.shared.addr;
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(Status::unavailable(format!(
                    "cannot connect to {addr}: {e}"
                )))
            }
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "cannot connect to {addr}: no answer in {CONNECT_TIMEOUT:?}"
                )))
            }
        };
        // Requests are written whole; Nagle's algorithm would only hold them back.
        tcp.set_nodelay(true)
            .map_err(|e| Status::unavailable(format!("cannot connect to {addr}: {e}")))?;
        let conn = self.handshake(tcp).await?;
        *self.shared.conn.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Starts HTTP/2 on `io` and runs the connection in a task of its own.
    async fn handshake<IO>(&self, io: IO) -> Result<Connection, Status>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = &self.shared.addr;
        let (send, connection) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .enable_push(false)
                .handshake::<_, Bytes>(io),
        )
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "cannot connect to {addr}: no HTTP/2 handshake in {CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| Status::unavailable(format!("cannot connect to {addr}: {e}")))?;
        // The task ends when the connection closes; the calls on it see why.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            number: self.shared.opened.fetch_add(1, Ordering::Relaxed),
            send,
        })
    }

    /// Drops connection `number` if it is still the open one, so the next call opens a
    /// new one.
    fn forget(&self, number: u64) {
        let mut conn = self.shared.conn.lock();
        if conn.as_ref().is_some_and(|c| c.number == number) {
            *conn = None;
        }
    }

    /// One call: the request whole, in one write; the response as it comes.
    async fn call_whole(
        self,
        request: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, Status> {
        let (mut head, body) = request.into_parts();
        // Encoding the message is the body's first poll; an encoding error (a message
        // over the limit) is the call's.
        let body = body.collect().await?.to_bytes();
        let path = head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        head.uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(self.shared.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| Status::internal(format!("cannot form the request's URI: {e}")))?;
        head.version = http::Version::HTTP_2;
        let head = http::Request::from_parts(head, ());

        // A connection found closed before anything was sent on it is replaced once.
        let mut retried = false;
        let (number, mut send) = loop {
            let conn = self.connection().await?;
            match conn.send.ready().await {
                Ok(send) => break (conn.number, send),
                Err(e) => {
                    self.forget(conn.number);
                    if retried || !(e.is_io() || e.is_go_away() || e.is_library()) {
                        return Err(h2_status(&self.shared.addr, &e));
                    }
                    retried = true;
                }
            }
        };
        let lost = |e: h2::Error| {
            if e.is_io() || e.is_go_away() {
                self.forget(number);
            }
            h2_status(&self.shared.addr, &e)
        };
        let (response, mut stream) = send.send_request(head, body.is_empty()).map_err(lost)?;
        if !body.is_empty() {
            // Queued before the connection task opens the stream: it goes out with the
            // HEADERS.
            stream.send_data(body, true).map_err(lost)?;
        }
        let response = response.await.map_err(lost)?;
        Ok(response.map(|recv| ResponseBody {
            recv,
            data_done: false,
            shared: Arc::clone(&self.shared),
        }))
    }
}

impl Service<http::Request<Body>> for OneWriteChannel {
    type Response = http::Response<ResponseBody>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Waiting for a free stream happens in the call, on the connection it uses.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().call_whole(request))
    }
}

/// The gRPC status for an HTTP/2 failure talking to `addr`: a connection lost or
/// refused, or a stream the server refused, is `Unavailable`.
fn h2_status(addr: &str, e: &h2::Error) -> Status {
    let code = if e.is_io() || e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Code::Unavailable
    } else if e.reason() == Some(h2::Reason::CANCEL) {
        Code::Cancelled
    } else {
        Code::Internal
    };
    Status::new(code, format!("HTTP/2 with {addr}: {e}"))
}

/// A response's body: its `DATA` frames, then its trailers (where gRPC puts the status).
pub struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    /// The channel's (for the address in errors; shared, not copied per response).
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("addr", &self.shared.addr)
            .field("data_done", &self.data_done)
            .finish_non_exhaustive()
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Read: the server may send as much again.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(h2_status(&self.shared.addr, &e)))),
                None => self.data_done = true,
            }
        }
        match ready!(self.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(h2_status(&self.shared.addr, &e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    use super::*;

    /// A health service on `listener`, until the sender returned fires; the receiver
    /// returned fires once the server has stopped (its connections closed).
    /// `service` is reported serving.
    fn serve(
        listener: TcpListener,
        service: &'static str,
    ) -> (oneshot::Sender<()>, oneshot::Receiver<()>) {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter
                .set_service_status(service, tonic_health::ServingStatus::Serving)
                .await;
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .expect("the test server runs");
            let _ = done_tx.send(());
        });
        (stop_tx, done_rx)
    }

    async fn check(
        client: &mut HealthClient<OneWriteChannel>,
        service: &str,
    ) -> Result<i32, Status> {
        let response = client
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?;
        Ok(response.into_inner().status)
    }

    #[tokio::test]
    async fn calls_get_answers_and_statuses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address").to_string();
        let _serving = serve(listener, "kv");
        let channel = OneWriteChannel::connect(&addr).await.expect("connects");
        let mut client = HealthClient::new(channel.clone());
        assert_eq!(
            check(&mut client, "kv").await.expect("answers"),
            ServingStatus::Serving as i32
        );
        // An error status (trailers-only) comes through with its code and message.
        let e = check(&mut client, "other")
            .await
            .expect_err("unknown service");
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
        assert!(e.message().contains("not registered"), "{e:?}");
        // Clones share the connection; calls on them run concurrently.
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move { check(&mut client, "kv").await })
            })
            .collect();
        for call in calls {
            let answer = call.await.expect("the call's task ends");
            assert_eq!(answer.expect("answers"), ServingStatus::Serving as i32);
        }
        assert_eq!(
            channel.shared.opened.load(Ordering::Relaxed),
            1,
            "one connection"
        );
    }

    /// A stream that keeps what is written to it, one entry per write.
    struct Recording {
        inner: TcpStream,
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncRead for Recording {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recording {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
            self.writes.lock().push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
            let written: Vec<u8> = bufs
                .iter()
                .flat_map(|b| b.iter().copied())
                .take(n)
                .collect();
            self.writes.lock().push(written);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The HTTP/2 frames in one write: (type, flags, stream id) each.
    fn frames(write: &[u8]) -> Vec<(u8, u8, u32)> {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < write.len() {
            let header = write.get(at..at + 9).expect("a write of whole frames");
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & !(1 << 31);
            frames.push((header[3], header[4], stream));
            at += 9 + len;
        }
        assert_eq!(at, write.len(), "a write of whole frames");
        frames
    }

    const HEADERS: u8 = 0x1;
    const DATA: u8 = 0x0;
    const END_STREAM: u8 = 0x1;

    #[tokio::test]
    async fn a_request_goes_out_in_one_write() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address").to_string();
        let _serving = serve(listener, "kv");
        let channel = OneWriteChannel::lazy(&addr).expect("an address");
        let writes = Arc::new(Mutex::new(Vec::new()));
        let tcp = TcpStream::connect(&addr).await.expect("connects");
        let conn = channel
            .handshake(Recording {
                inner: tcp,
                writes: writes.clone(),
            })
            .await
            .expect("speaks HTTP/2");
        *channel.shared.conn.lock() = Some(conn);
        let mut client = HealthClient::new(channel.clone());
        // The first call also settles the connection's settings.
        check(&mut client, "kv").await.expect("answers");
        for _ in 0..5 {
            writes.lock().clear();
            check(&mut client, "kv").await.expect("answers");
            let writes = writes.lock().clone();
            let with_headers: Vec<_> = writes
                .iter()
                .map(|w| frames(w))
                .filter(|f| f.iter().any(|&(kind, _, _)| kind == HEADERS))
                .collect();
            assert_eq!(
                with_headers.len(),
                1,
                "one write with a HEADERS frame: {writes:?}"
            );
            let frames = &with_headers[0];
            let (_, _, stream) = *frames
                .iter()
                .find(|&&(kind, _, _)| kind == HEADERS)
                .expect("found above");
            assert!(
                frames.contains(&(DATA, END_STREAM, stream)),
                "the request's HEADERS and its DATA ending the stream in one write: {frames:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address").to_string();
        drop(listener);
        let e = OneWriteChannel::connect(&addr)
            .await
            .expect_err("nothing listens");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains(&addr), "{e:?}");
        let e = OneWriteChannel::lazy("not an address").expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    #[tokio::test]
    async fn a_server_restart_is_survived() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let (stop, stopped) = serve(listener, "kv");
        let channel = OneWriteChannel::connect(&addr.to_string())
            .await
            .expect("connects");
        let mut client = HealthClient::new(channel.clone());
        check(&mut client, "kv").await.expect("answers");
        let first = channel.shared.conn.lock().as_ref().map(|c| c.number);

        stop.send(()).expect("the server runs");
        // A graceful stop lets the open connection finish and close (the client closes
        // it on the server's GOAWAY).
        tokio::time::timeout(Duration::from_secs(30), stopped)
            .await
            .expect("the server stops")
            .expect("the server task ends");
        let listener = TcpListener::bind(addr)
            .await
            .expect("the port is free again");
        let _serving = serve(listener, "kv");
        // The first call finds the connection closed and opens another; should it have
        // gone out before the close was seen, it fails (Unavailable) and the next one
        // opens another.
        let mut failures = 0;
        loop {
            match check(&mut client, "kv").await {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                    failures += 1;
                    assert!(failures < 2, "two calls failed after the restart: {e:?}");
                }
            }
        }
        let now = channel.shared.conn.lock().as_ref().map(|c| c.number);
        assert_ne!(first, now, "the call ran on a new connection");
    }
}
