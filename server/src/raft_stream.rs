//! Raft RPCs over one long-lived gRPC stream per peer (`Internal.RaftStream`).
//!
//! A unary call costs an HTTP/2 stream of its own: request headers, the message, response
//! headers, the answer and trailers, each encoded, decoded and routed through the gRPC
//! stack on both sides. Raft sends many small messages (every group's AppendEntries,
//! heartbeats and commit notices, to every follower), so a node keeps one bidirectional
//! stream to each peer for them instead: each call is one message (a [`pb::RaftCall`]
//! with an id), each answer one message ([`pb::RaftAnswer`] with the same id), in any
//! order, so a slow call of one group does not hold up another's.
//!
//! What stays unary: snapshot chunks and any request larger than
//! [`STREAM_MAX_BODY`], so that one big message cannot delay the heartbeats queued
//! behind it on the stream; and every call to a peer that does not serve the stream (an
//! older node answers `Unimplemented`), asked again after [`RETRY_UNSUPPORTED`].
//!
//! Failure: when the stream breaks (the peer stopped, the connection dropped), every
//! call waiting on it fails as unreachable, as a unary call would, and the next call
//! opens a new stream. A call whose caller gives up (a timeout) forgets its id, so a
//! peer that never answers leaks nothing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elastickv_raft::{NodeId, RaftRequest, RaftService, RpcKind, TransportError};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::pb::cluster::internal_client::InternalClient;
use crate::pb::cluster::{self as pb, RaftMessage};
use crate::peers::MAX_INTERNAL_MESSAGE;

/// Requests with a larger body go as unary calls (see the module documentation).
pub const STREAM_MAX_BODY: usize = 256 * 1024;

/// How long a peer that answered `Unimplemented` is sent unary calls before its stream
/// is tried again (it may have been upgraded).
pub const RETRY_UNSUPPORTED: Duration = Duration::from_secs(60);

/// Whether `request` may travel on a stream.
pub fn streamable(request: &RaftRequest) -> bool {
    request.kind != RpcKind::InstallSnapshot && request.body.len() <= STREAM_MAX_BODY
}

/// The wire form of `request`.
pub fn to_message(request: RaftRequest) -> RaftMessage {
    RaftMessage {
        from: request.from,
        group_id: request.group,
        kind: request.kind.code(),
        body: request.body,
    }
}

/// The request a received message carries, or why it carries none.
pub fn from_message(m: RaftMessage) -> Result<RaftRequest, String> {
    let kind =
        RpcKind::from_code(m.kind).ok_or_else(|| format!("unknown Raft RPC kind {}", m.kind))?;
    Ok(RaftRequest {
        from: m.from,
        group: m.group_id,
        kind,
        body: m.body,
    })
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Opened; the peer has not answered the stream yet.
    Opening,
    /// The peer accepted it.
    Open,
    /// The peer does not serve streams.
    Unsupported,
    /// Broken, with the reason; a new stream replaces it.
    Closed(String),
}

/// Calls waiting for their answers.
#[derive(Default)]
struct Waiting {
    /// False once the stream is closed: no call may wait on it any more.
    open: bool,
    calls: HashMap<u64, oneshot::Sender<Result<Vec<u8>, TransportError>>>,
}

/// A call's claim on its answer; dropping it (the caller gave up) forgets the id.
struct Claim<'a> {
    waiting: &'a Mutex<Waiting>,
    id: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.waiting.lock().calls.remove(&self.id);
    }
}

/// The outcome of [`RaftStream::call`].
#[derive(Debug)]
pub enum Sent {
    /// The peer's answer, or why there is none.
    Answered(Result<Vec<u8>, TransportError>),
    /// The peer does not serve streams: the request comes back, to be sent unary.
    Unsupported(RaftRequest),
}

/// One stream of Raft calls to one peer.
pub struct RaftStream {
    target: NodeId,
    outbound: mpsc::UnboundedSender<pb::RaftCall>,
    phase: watch::Receiver<Phase>,
    waiting: Arc<Mutex<Waiting>>,
    next_id: AtomicU64,
    opened: Instant,
}

impl std::fmt::Debug for RaftStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStream")
            .field("target", &self.target)
            .field("phase", &*self.phase.borrow())
            .finish_non_exhaustive()
    }
}

impl RaftStream {
    /// Opens a stream to `target` over `channel` (a plain channel: the stream's body must
    /// not be collected, see [`crate::whole_body`]). Must be called within a Tokio
    /// runtime: a task of its own reads the answers.
    pub fn open(target: NodeId, channel: Channel) -> RaftStream {
        let (outbound, rx) = mpsc::unbounded_channel();
        let (phase_tx, phase) = watch::channel(Phase::Opening);
        let waiting = Arc::new(Mutex::new(Waiting {
            open: true,
            calls: HashMap::new(),
        }));
        let client = InternalClient::new(channel)
            .max_decoding_message_size(MAX_INTERNAL_MESSAGE)
            .max_encoding_message_size(MAX_INTERNAL_MESSAGE);
        tokio::spawn(read_answers(
            target,
            client,
            rx,
            phase_tx,
            Arc::clone(&waiting),
        ));
        RaftStream {
            target,
            outbound,
            phase,
            waiting,
            next_id: AtomicU64::new(1),
            opened: Instant::now(),
        }
    }

    /// Whether this stream can no longer be used for a call: it broke, or the peer does
    /// not serve streams and it is time to ask again.
    pub fn is_spent(&self) -> bool {
        match &*self.phase.borrow() {
            Phase::Closed(_) => true,
            Phase::Unsupported => self.opened.elapsed() >= RETRY_UNSUPPORTED,
            Phase::Opening | Phase::Open => false,
        }
    }

    /// Sends `request` and waits for its answer.
    pub async fn call(&self, request: RaftRequest) -> Sent {
        let mut phase = self.phase.clone();
        // Until the peer has accepted the stream, a call may still have to go unary.
        let current = phase
            .wait_for(|p| *p != Phase::Opening)
            .await
            .map(|p| p.clone())
            .unwrap_or_else(|_| Phase::Closed("stream reader stopped".into()));
        match current {
            Phase::Unsupported => return Sent::Unsupported(request),
            Phase::Closed(reason) => return Sent::Answered(Err(self.unreachable(reason))),
            Phase::Opening | Phase::Open => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock();
            if !waiting.open {
                return Sent::Answered(Err(self.unreachable("the stream closed".into())));
            }
            waiting.calls.insert(id, tx);
        }
        let _claim = Claim {
            waiting: &self.waiting,
            id,
        };
        let call = pb::RaftCall {
            id,
            message: Some(to_message(request)),
        };
        if self.outbound.send(call).is_err() {
            return Sent::Answered(Err(self.unreachable("the stream closed".into())));
        }
        Sent::Answered(match rx.await {
            Ok(answer) => answer,
            Err(_) => Err(self.unreachable("the stream closed".into())),
        })
    }

    fn unreachable(&self, reason: String) -> TransportError {
        TransportError::Unreachable {
            node: self.target,
            reason,
        }
    }
}

/// Opens the stream and hands each answer to its call until the stream ends; then fails
/// every call still waiting.
async fn read_answers(
    target: NodeId,
    mut client: InternalClient<Channel>,
    calls: mpsc::UnboundedReceiver<pb::RaftCall>,
    phase: watch::Sender<Phase>,
    waiting: Arc<Mutex<Waiting>>,
) {
    let ended = match client
        .raft_stream(UnboundedReceiverStream::new(calls))
        .await
    {
        Ok(response) => {
            let _ = phase.send(Phase::Open);
            let mut answers = response.into_inner();
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => deliver(&waiting, answer),
                    Ok(None) => break Phase::Closed(format!("node {target} ended the stream")),
                    Err(status) => break Phase::Closed(status_text(&status)),
                }
            }
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => Phase::Unsupported,
        Err(status) => Phase::Closed(status_text(&status)),
    };
    let reason = match &ended {
        Phase::Closed(reason) => reason.clone(),
        _ => format!("node {target} does not serve Raft streams"),
    };
    let calls = {
        let mut waiting = waiting.lock();
        waiting.open = false;
        std::mem::take(&mut waiting.calls)
    };
    for (_, call) in calls {
        let _ = call.send(Err(TransportError::Unreachable {
            node: target,
            reason: reason.clone(),
        }));
    }
    tracing::debug!(target, reason, "Raft stream ended");
    let _ = phase.send(ended);
}

fn deliver(waiting: &Mutex<Waiting>, answer: pb::RaftAnswer) {
    // Absent when the caller gave up.
    let Some(call) = waiting.lock().calls.remove(&answer.id) else {
        return;
    };
    let result = if answer.error.is_empty() {
        Ok(answer.body)
    } else {
        Err(TransportError::Network(answer.error))
    };
    let _ = call.send(result);
}

fn status_text(status: &Status) -> String {
    format!("{}: {}", status.code(), status.message())
}

/// The answers of a stream served by [`serve`].
pub type Answers =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RaftAnswer, Status>> + Send + 'static>>;

/// Serves one peer's stream: each call is handed to `service` as it arrives (calls run
/// concurrently) and its answer sent back when ready. The answers end when the peer
/// ends its calls (after the last answer) or when `stop` turns true (at once, so a
/// stopping server is not held by its peers' streams).
pub fn serve<S: RaftService + ?Sized>(
    service: Arc<S>,
    mut calls: Streaming<pb::RaftCall>,
    mut stop: watch::Receiver<bool>,
) -> Answers {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = calls.message() => next,
                _ = stop.wait_for(|s| *s) => break,
            };
            let call = match next {
                Ok(Some(call)) => call,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(error = %status, "a peer's Raft stream failed");
                    break;
                }
            };
            let tx = tx.clone();
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                let answer = answer(service.as_ref(), call).await;
                // The stream is gone when the peer left; nobody waits for the answer.
                let _ = tx.send(Ok(answer));
            });
        }
        // Dropping `tx` here ends the answers once the running calls have answered;
        // on stop, end them now.
        if *stop.borrow() {
            let _ = tx.send(Err(Status::unavailable("the node is stopping")));
        }
    });
    // tonic ends the answers at their first error (sent as the trailers).
    Box::pin(UnboundedReceiverStream::new(rx))
}

async fn answer<S: RaftService + ?Sized>(service: &S, call: pb::RaftCall) -> pb::RaftAnswer {
    let id = call.id;
    let Some(m) = call.message else {
        return pb::RaftAnswer {
            id,
            body: Vec::new(),
            error: "a Raft call without a message".into(),
        };
    };
    let request = match from_message(m) {
        Ok(request) => request,
        Err(error) => {
            return pb::RaftAnswer {
                id,
                body: Vec::new(),
                error,
            }
        }
    };
    let body = service.handle(request).await;
    pb::RaftAnswer {
        id,
        body,
        error: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use elastickv_raft::Transport;
    use tonic::{Request, Response};

    use super::*;
    use crate::pb::cluster::internal_server::{Internal, InternalServer};
    use crate::peers::{GrpcTransport, Peers};

    /// Body byte 0 of a request that never gets its answer.
    const NEVER: u8 = 255;
    /// Body byte 0 of a request answered once the test releases it.
    const HELD: u8 = 254;

    /// Answers the group id followed by the body: at once, never for [`NEVER`], or
    /// once `release` has a permit for [`HELD`].
    struct Echo {
        release: tokio::sync::Semaphore,
    }

    impl Default for Echo {
        fn default() -> Self {
            Echo {
                release: tokio::sync::Semaphore::new(0),
            }
        }
    }

    #[async_trait]
    impl RaftService for Echo {
        async fn handle(&self, request: RaftRequest) -> Vec<u8> {
            match request.body.first().copied() {
                Some(NEVER) => std::future::pending::<()>().await,
                Some(HELD) => self.release.acquire().await.expect("open").forget(),
                _ => {}
            }
            let mut answer = request.group.to_le_bytes().to_vec();
            answer.extend_from_slice(&request.body);
            answer
        }
    }

    /// A peer's `Internal` service: Raft calls only, counted.
    #[derive(Clone)]
    struct Peer {
        echo: Arc<Echo>,
        streams: bool,
        stop: watch::Receiver<bool>,
        unary_calls: Arc<AtomicUsize>,
        streams_opened: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Internal for Peer {
        type RaftStreamStream = Answers;

        async fn raft_stream(
            &self,
            request: Request<Streaming<pb::RaftCall>>,
        ) -> Result<Response<Answers>, Status> {
            self.streams_opened.fetch_add(1, Ordering::SeqCst);
            if !self.streams {
                return Err(Status::unimplemented("no streams here"));
            }
            Ok(Response::new(serve(
                Arc::clone(&self.echo),
                request.into_inner(),
                self.stop.clone(),
            )))
        }

        async fn raft(
            &self,
            request: Request<RaftMessage>,
        ) -> Result<Response<pb::RaftReply>, Status> {
            self.unary_calls.fetch_add(1, Ordering::SeqCst);
            let request = from_message(request.into_inner()).expect("a known kind");
            let body = self.echo.handle(request).await;
            Ok(Response::new(pb::RaftReply { body }))
        }

        async fn apply(
            &self,
            _: Request<pb::ApplyRequest>,
        ) -> Result<Response<pb::ApplyReply>, Status> {
            Err(Status::unimplemented("apply"))
        }

        async fn read(
            &self,
            _: Request<pb::ReadRequest>,
        ) -> Result<Response<pb::ReadReply>, Status> {
            Err(Status::unimplemented("read"))
        }

        async fn timestamp(
            &self,
            _: Request<pb::GetTimestampRequest>,
        ) -> Result<Response<pb::GetTimestampResponse>, Status> {
            Err(Status::unimplemented("timestamp"))
        }

        async fn join(
            &self,
            _: Request<pb::AddNodeRequest>,
        ) -> Result<Response<pb::JoinReply>, Status> {
            Err(Status::unimplemented("join"))
        }
    }

    struct Running {
        addr: String,
        peer: Peer,
        stop: watch::Sender<bool>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Running {
        /// Stops the server; it must end although peers' streams are open.
        async fn stop(self) {
            let _ = self.stop.send(true);
            tokio::time::timeout(Duration::from_secs(20), self.server)
                .await
                .expect("the server stops while a stream is open")
                .expect("the server task");
        }
    }

    async fn start_peer(addr: &str, streams: bool) -> Running {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let (stop, stop_rx) = watch::channel(false);
        let peer = Peer {
            echo: Arc::default(),
            streams,
            stop: stop_rx.clone(),
            unary_calls: Arc::default(),
            streams_opened: Arc::default(),
        };
        let service = InternalServer::new(peer.clone());
        let mut until = stop_rx;
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = until.wait_for(|s| *s).await;
                    },
                )
                .await
                .expect("serve");
        });
        Running {
            addr,
            peer,
            stop,
            server,
        }
    }

    fn request(group: u64, kind: RpcKind, body: Vec<u8>) -> RaftRequest {
        RaftRequest {
            from: 7,
            group,
            kind,
            body,
        }
    }

    fn echoed(group: u64, body: &[u8]) -> Vec<u8> {
        let mut answer = group.to_le_bytes().to_vec();
        answer.extend_from_slice(body);
        answer
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_stream_and_each_gets_its_own_answer() {
        let peer = start_peer("127.0.0.1:0", true).await;
        let transport = Arc::new(GrpcTransport::new(Arc::new(Peers::new())));
        let send = |group: u64, kind: RpcKind, body: Vec<u8>| {
            let transport = Arc::clone(&transport);
            let addr = peer.addr.clone();
            tokio::spawn(async move { transport.send(2, &addr, request(group, kind, body)).await })
        };
        // A call the peer holds: the calls after it are answered meanwhile, on the
        // same stream, each with its own answer.
        let held = send(100, RpcKind::AppendEntries, vec![HELD, 7]);
        let quick: Vec<_> = (0..40u8)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    RpcKind::AppendEntries
                } else {
                    RpcKind::Vote
                };
                (i, send(u64::from(i), kind, vec![i, 3, 9]))
            })
            .collect();
        for (i, call) in quick {
            let answer = call.await.expect("the call's task").expect("an answer");
            assert_eq!(answer, echoed(u64::from(i), &[i, 3, 9]), "call {i}");
        }
        assert!(!held.is_finished(), "the held call is still waiting");
        peer.peer.echo.release.add_permits(1);
        let answer = held.await.expect("the call's task").expect("an answer");
        assert_eq!(answer, echoed(100, &[HELD, 7]));
        assert_eq!(peer.peer.streams_opened.load(Ordering::SeqCst), 1);
        assert_eq!(peer.peer.unary_calls.load(Ordering::SeqCst), 0);
        peer.stop().await;
    }

    #[tokio::test]
    async fn snapshot_chunks_and_large_requests_go_as_unary_calls() {
        let peer = start_peer("127.0.0.1:0", true).await;
        let transport = GrpcTransport::new(Arc::new(Peers::new()));
        let chunk = vec![0u8, 1, 2];
        let answer = transport
            .send(
                2,
                &peer.addr,
                request(1, RpcKind::InstallSnapshot, chunk.clone()),
            )
            .await
            .expect("an answer");
        assert_eq!(answer, echoed(1, &chunk));
        let big = vec![0u8; STREAM_MAX_BODY + 1];
        let answer = transport
            .send(
                2,
                &peer.addr,
                request(2, RpcKind::AppendEntries, big.clone()),
            )
            .await
            .expect("an answer");
        assert_eq!(answer, echoed(2, &big));
        assert_eq!(peer.peer.unary_calls.load(Ordering::SeqCst), 2);
        assert_eq!(peer.peer.streams_opened.load(Ordering::SeqCst), 0);
        // At the limit it still streams.
        let at_limit = vec![0u8; STREAM_MAX_BODY];
        let answer = transport
            .send(
                2,
                &peer.addr,
                request(3, RpcKind::AppendEntries, at_limit.clone()),
            )
            .await
            .expect("an answer");
        assert_eq!(answer, echoed(3, &at_limit));
        assert_eq!(peer.peer.streams_opened.load(Ordering::SeqCst), 1);
        peer.stop().await;
    }

    #[tokio::test]
    async fn a_peer_without_streams_gets_unary_calls() {
        let peer = start_peer("127.0.0.1:0", false).await;
        let transport = GrpcTransport::new(Arc::new(Peers::new()));
        for i in 0..5u64 {
            let body = vec![0, i as u8];
            let answer = transport
                .send(
                    2,
                    &peer.addr,
                    request(i, RpcKind::AppendEntries, body.clone()),
                )
                .await
                .expect("an answer");
            assert_eq!(answer, echoed(i, &body));
        }
        assert_eq!(peer.peer.unary_calls.load(Ordering::SeqCst), 5);
        // Asked once, not once per call.
        assert_eq!(peer.peer.streams_opened.load(Ordering::SeqCst), 1);
        peer.stop().await;
    }

    #[tokio::test]
    async fn turned_off_streams_send_every_call_unary() {
        let peer = start_peer("127.0.0.1:0", true).await;
        let transport = GrpcTransport::unary(Arc::new(Peers::new()));
        let answer = transport
            .send(
                2,
                &peer.addr,
                request(4, RpcKind::AppendEntries, vec![0, 1]),
            )
            .await
            .expect("an answer");
        assert_eq!(answer, echoed(4, &[0, 1]));
        assert_eq!(peer.peer.unary_calls.load(Ordering::SeqCst), 1);
        assert_eq!(peer.peer.streams_opened.load(Ordering::SeqCst), 0);
        peer.stop().await;
    }

    #[tokio::test]
    async fn a_stopping_peer_fails_the_waiting_calls_and_a_new_stream_follows() {
        let peer = start_peer("127.0.0.1:0", true).await;
        let addr = peer.addr.clone();
        let transport = Arc::new(GrpcTransport::new(Arc::new(Peers::new())));
        let waiting = {
            let transport = Arc::clone(&transport);
            let addr = addr.clone();
            tokio::spawn(async move {
                transport
                    .send(2, &addr, request(1, RpcKind::AppendEntries, vec![NEVER]))
                    .await
            })
        };
        // The call is on the stream once the peer has seen the stream open.
        let answer = transport
            .send(2, &addr, request(1, RpcKind::AppendEntries, vec![0]))
            .await;
        assert_eq!(answer.expect("an answer"), echoed(1, &[0]));
        peer.stop().await;
        let failed = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the waiting call ends when its stream does")
            .expect("the call's task");
        assert!(
            matches!(failed, Err(TransportError::Unreachable { node: 2, .. })),
            "{failed:?}"
        );
        // The same address serves again: the next call opens a new stream. The old
        // connection's failure may still reach one attempt (the channel reports it
        // once, then reconnects), so a few attempts, without pause.
        let again = start_peer(&addr, true).await;
        let mut answer = None;
        for _ in 0..3 {
            if let Ok(a) = transport
                .send(2, &addr, request(5, RpcKind::AppendEntries, vec![0, 5]))
                .await
            {
                answer = Some(a);
                break;
            }
        }
        assert_eq!(
            answer.expect("an answer on a new stream"),
            echoed(5, &[0, 5])
        );
        assert_eq!(again.peer.streams_opened.load(Ordering::SeqCst), 1);
        again.stop().await;
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_nothing_waiting() {
        let peer = start_peer("127.0.0.1:0", true).await;
        let channel = Peers::new()
            .channel(&peer.addr)
            .expect("a channel")
            .into_inner();
        let stream = RaftStream::open(2, channel);
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            stream.call(request(1, RpcKind::AppendEntries, vec![NEVER])),
        )
        .await;
        assert!(gave_up.is_err(), "the call never gets an answer");
        assert!(stream.waiting.lock().calls.is_empty());
        match stream
            .call(request(2, RpcKind::AppendEntries, vec![0, 2]))
            .await
        {
            Sent::Answered(answer) => assert_eq!(answer.expect("an answer"), echoed(2, &[0, 2])),
            Sent::Unsupported(_) => panic!("the peer serves streams"),
        }
        assert!(stream.waiting.lock().calls.is_empty());
        peer.stop().await;
    }

    #[tokio::test]
    async fn calls_that_cannot_be_handled_are_answered_with_an_error() {
        let unknown = pb::RaftCall {
            id: 3,
            message: Some(RaftMessage {
                from: 1,
                group_id: 0,
                kind: 99,
                body: vec![],
            }),
        };
        let a = answer(&Echo::default(), unknown).await;
        assert_eq!(a.id, 3);
        assert!(a.error.contains("unknown Raft RPC kind 99"), "{}", a.error);
        let empty = pb::RaftCall {
            id: 4,
            message: None,
        };
        let a = answer(&Echo::default(), empty).await;
        assert_eq!(a.id, 4);
        assert!(a.error.contains("without a message"), "{}", a.error);
        // And the caller sees it as a network error.
        let waiting = Mutex::new(Waiting {
            open: true,
            calls: HashMap::new(),
        });
        let (tx, rx) = oneshot::channel();
        waiting.lock().calls.insert(4, tx);
        deliver(&waiting, a);
        assert!(matches!(
            rx.await.expect("delivered"),
            Err(TransportError::Network(m)) if m.contains("without a message")
        ));
    }
}
