//! Starting and stopping a node: open the groups, serve every gRPC service (with
//! health and reflection), form or join the cluster, run the background tasks, serve
//! metrics; stop all of it cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use elastickv_engine_api::{EngineError, MvccEngine};
use elastickv_raft::{Role, DEFAULT_GROUP};
use elastickv_txn::gc::compact_txn_data;
use elastickv_txn::{
    Coordinator, CoordinatorConfig, GcConfig, GcDriver, LockResolver, LockResolverConfig,
    TxnStateMachine,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::transport::Server;

use crate::api::{ApiLimits, PublicApi};
use crate::cluster::{Cluster, ClusterConfig};
use crate::cluster_api::ClusterApi;
use crate::metrics::{GroupGauges, Metrics};
use crate::pb;
use crate::peers::MAX_INTERNAL_MESSAGE;

/// Background task settings.
#[derive(Debug, Clone, Copy)]
pub struct BackgroundConfig {
    /// How often each group's leader looks for expired locks.
    pub lock_resolver_interval: Duration,
    /// How often GC runs (on the default group's leader) and replicas compact.
    pub gc_interval: Duration,
    /// How long old versions stay readable.
    pub gc_retention: Duration,
    /// How often the route table cache is reloaded from the local replica.
    pub route_refresh_interval: Duration,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            lock_resolver_interval: Duration::from_secs(1),
            gc_interval: Duration::from_secs(60),
            gc_retention: Duration::from_secs(600),
            route_refresh_interval: Duration::from_millis(500),
        }
    }
}

/// Everything a node runs with.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The cluster part (id, addresses, groups, Raft).
    pub cluster: ClusterConfig,
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served (`None`: not served).
    pub metrics_listen: Option<SocketAddr>,
    /// An existing member to ask for admission (a node joining a running cluster).
    pub join: Option<String>,
    /// Public API limits.
    pub limits: ApiLimits,
    /// Background tasks.
    pub background: BackgroundConfig,
    /// Largest gRPC message accepted from clients, in bytes.
    pub max_message_bytes: usize,
}

/// A running node.
pub struct RunningNode<E: MvccEngine> {
    cluster: Arc<Cluster<E>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    local_addr: SocketAddr,
}

impl<E: MvccEngine> std::fmt::Debug for RunningNode<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("addr", &self.local_addr)
            .finish()
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Raft or an engine failed to open.
    #[error(transparent)]
    Raft(#[from] elastickv_raft::RaftError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Joining the cluster failed.
    #[error("joining through {via}: {message}")]
    Join {
        /// The member asked.
        via: String,
        /// Why.
        message: String,
    },
}

impl<E: MvccEngine> RunningNode<E> {
    /// The node.
    pub fn cluster(&self) -> &Arc<Cluster<E>> {
        &self.cluster
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving (requests in flight get a short grace period; connections other
    /// nodes keep open do not hold it up), stops the background tasks, then stops
    /// every group.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::debug!("tasks still running after the grace period; aborting them");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        if let Err(e) = self.cluster.shutdown().await {
            tracing::warn!(error = %e, "stopping the Raft groups");
        }
    }
}

/// Starts a node: opens its groups with `open_engine`, serves gRPC on
/// `settings.listen`, forms the cluster (first start of an initial member) or joins it
/// (`settings.join`), and starts the background tasks.
pub async fn start_node<E, F>(
    settings: NodeSettings,
    open_engine: F,
) -> Result<RunningNode<E>, StartError>
where
    E: MvccEngine,
    F: Fn(&std::path::Path) -> Result<E, EngineError>,
{
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let cluster = Cluster::open(settings.cluster.clone(), open_engine).await?;
    let metrics = Arc::new(Metrics::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let coordinator = Coordinator::new(
        Arc::clone(&cluster),
        crate::api::tso_of(&cluster),
        CoordinatorConfig {
            lock_ttl: crate::api::lock_ttl(&settings.limits),
            ..CoordinatorConfig::default()
        },
    );
    let public = PublicApi::new(Arc::clone(&cluster), coordinator.clone(), settings.limits);
    let internal = ClusterApi::new(Arc::clone(&cluster), shutdown_rx.clone());
    let max = settings.max_message_bytes;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::api::raw_kv_server::RawKvServer<PublicApi<E>>>()
        .await;
    health_reporter
        .set_serving::<pb::api::transactional_kv_server::TransactionalKvServer<PublicApi<E>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Config(format!("reflection: {e}")))?;

    let router = Server::builder()
        .layer(MetricsLayer {
            metrics: Arc::clone(&metrics),
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            pb::api::raw_kv_server::RawKvServer::new(public.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::api::transactional_kv_server::TransactionalKvServer::new(public)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(pb::cluster::distribution_server::DistributionServer::new(
            internal.clone(),
        ))
        .add_service(pb::cluster::admin_server::AdminServer::new(
            internal.clone(),
        ))
        .add_service(
            pb::cluster::internal_server::InternalServer::new(internal)
                .max_decoding_message_size(MAX_INTERNAL_MESSAGE)
                .max_encoding_message_size(MAX_INTERNAL_MESSAGE),
        );
    let mut serve_shutdown = shutdown_rx.clone();
    tasks.spawn(async move {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = async move {
            let _ = serve_shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(error = %e, "the gRPC server stopped");
        }
    });

    cluster.bootstrap().await?;
    if let Some(via) = &settings.join {
        join(&cluster, via).await?;
    }
    if cluster
        .config()
        .initial_members
        .keys()
        .next()
        .is_some_and(|first| *first == cluster.config().node_id)
    {
        let c = Arc::clone(&cluster);
        tasks.spawn(async move {
            if let Err(e) = c.ensure_routes().await {
                tracing::error!(error = %e, "writing the first route table");
            }
        });
    }

    spawn_background(
        &mut tasks,
        &cluster,
        &coordinator,
        &metrics,
        &settings,
        &shutdown_rx,
    );
    if let Some(addr) = settings.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let c = Arc::clone(&cluster);
        let m = Arc::clone(&metrics);
        let page = Arc::new(move || m.render(&gauges(&c), &c.counters()));
        tasks.spawn(crate::metrics::serve(listener, page, shutdown_rx.clone()));
    }
    Ok(RunningNode {
        cluster,
        shutdown,
        tasks,
        local_addr,
    })
}

async fn join<E: MvccEngine>(cluster: &Arc<Cluster<E>>, via: &str) -> Result<(), StartError> {
    let me = cluster.config().node_id;
    let already = cluster
        .node()
        .group(DEFAULT_GROUP)
        .is_some_and(|g| g.status().voters.contains(&me));
    if already {
        return Ok(()); // a restart of a node that joined before
    }
    let fail = |message: String| StartError::Join {
        via: via.to_string(),
        message,
    };
    let mut client = cluster.peers().internal(via).map_err(fail)?;
    let request = pb::cluster::AddNodeRequest {
        node_id: me,
        addr: cluster.config().advertise.clone(),
    };
    let mut last = String::new();
    for _ in 0..30 {
        match client.join(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(status) => last = status.message().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(fail(last))
}

fn gauges<E: MvccEngine>(cluster: &Cluster<E>) -> Vec<GroupGauges> {
    cluster
        .group_statuses()
        .into_iter()
        .map(|s| GroupGauges {
            group: s.group,
            is_leader: s.role == Role::Leader,
            term: s.term,
            last_log_index: s.last_log_index,
            committed_index: s.committed_index,
            applied_index: s.applied_index,
            log_syncs: s.log_syncs,
        })
        .collect()
}

fn leads<E: MvccEngine>(cluster: &Cluster<E>, group: u64) -> bool {
    cluster
        .node()
        .group(group)
        .is_some_and(|g| g.status().role == Role::Leader)
}

/// Sleeps for `period`, or returns `false` when shutdown was signalled.
async fn tick(shutdown: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    // Timing out means the period passed without a shutdown (or a dropped sender).
    tokio::time::timeout(period, shutdown.wait_for(|s| *s))
        .await
        .is_err()
}

fn spawn_background<E: MvccEngine>(
    tasks: &mut JoinSet<()>,
    cluster: &Arc<Cluster<E>>,
    coordinator: &Coordinator<Cluster<E>>,
    metrics: &Arc<Metrics>,
    settings: &NodeSettings,
    shutdown: &watch::Receiver<bool>,
) {
    let background = settings.background;
    // Route table refresh.
    {
        let c = Arc::clone(cluster);
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            while tick(&mut stop, background.route_refresh_interval).await {
                c.refresh_routes();
            }
        });
    }
    // Lock resolver: one per group, active while this node leads the group.
    for group in cluster.config().groups.clone() {
        let c = Arc::clone(cluster);
        let m = Arc::clone(metrics);
        let mut stop = shutdown.clone();
        let mut resolver = LockResolver::new(
            Arc::clone(cluster),
            crate::api::tso_of(cluster),
            group,
            LockResolverConfig::default(),
        );
        tasks.spawn(async move {
            while tick(&mut stop, background.lock_resolver_interval).await {
                if !leads(&c, group) {
                    continue;
                }
                match resolver.run_round().await {
                    Ok(round) => {
                        m.resolver_rounds
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        m.locks_resolved
                            .fetch_add(round.resolved as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => tracing::debug!(group, error = %e, "lock resolver round"),
                }
            }
        });
    }
    // GC: the default group's leader resolves old locks and raises every group's GC
    // fence; every replica then compacts its engines at its group's fence.
    {
        let c = Arc::clone(cluster);
        let m = Arc::clone(metrics);
        let mut stop = shutdown.clone();
        let driver = GcDriver::new(
            Arc::clone(cluster),
            crate::api::tso_of(cluster),
            Arc::clone(coordinator.active()),
            GcConfig {
                retention: background.gc_retention,
                ..GcConfig::default()
            },
        );
        tasks.spawn(async move {
            while tick(&mut stop, background.gc_interval).await {
                if leads(&c, DEFAULT_GROUP) {
                    match driver.run_round().await {
                        Ok(_) => {
                            m.gc_rounds
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "GC round"),
                    }
                }
                for group in c.node().group_ids() {
                    let Some(g) = c.node().group(group) else {
                        continue;
                    };
                    let engine = Arc::clone(g.engine());
                    let m = Arc::clone(&m);
                    let compacted = tokio::task::spawn_blocking(move || {
                        let fence = TxnStateMachine::new(Arc::clone(&engine)).gc_fence()?;
                        if fence == 0 {
                            return Ok(0);
                        }
                        let stats = compact_txn_data(engine.as_ref(), fence)?;
                        Ok::<u64, elastickv_txn::TxnError>(stats.versions_removed)
                    })
                    .await;
                    match compacted {
                        Ok(Ok(removed)) => {
                            m.compactions
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            m.versions_removed
                                .fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(Err(e)) => tracing::warn!(group, error = %e, "compaction"),
                        Err(e) => tracing::warn!(group, error = %e, "compaction task"),
                    }
                }
            }
        });
    }
}

/// Counts every gRPC call by method and status code, with its latency.
#[derive(Debug, Clone)]
struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Debug, Clone)]
struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with("/elastickv.v1.Internal/") || path.starts_with("/grpc.") {
            return Box::pin(self.inner.call(request));
        }
        let method = path.to_string();
        let metrics = Arc::clone(&self.metrics);
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            // A call that fails before its body answers with the status in its headers
            // ("trailers only"); a successful one has none there.
            let code = match &response {
                Ok(r) => match r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(tonic::Code::from)
                {
                    None | Some(tonic::Code::Ok) => "OK".into(),
                    Some(c) => format!("{c:?}").into(),
                },
                Err(_) => std::borrow::Cow::Borrowed("Internal"),
            };
            metrics.observe(&method, &code, started.elapsed());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower_layer::Layer;

    use super::*;
    use crate::metrics::NodeCounters;

    /// A service answering every call with `grpc-status` `status` in its headers (as a
    /// trailers-only answer does), or with none.
    #[derive(Clone)]
    struct Answer(Option<&'static str>);

    impl Service<http::Request<()>> for Answer {
        type Response = http::Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: http::Request<()>) -> Self::Future {
            let mut response = http::Response::new(());
            if let Some(status) = self.0 {
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static(status));
            }
            std::future::ready(Ok(response))
        }
    }

    async fn call(metrics: &Arc<Metrics>, path: &str, status: Option<&'static str>) {
        let mut service = MetricsLayer {
            metrics: Arc::clone(metrics),
        }
        .layer(Answer(status));
        let request = http::Request::builder()
            .uri(path)
            .body(())
            .expect("request");
        service.call(request).await.expect("answer");
    }

    #[tokio::test]
    async fn calls_are_counted_by_method_and_status() {
        let metrics = Arc::new(Metrics::default());
        let put = "/elastickv.v1.TransactionalKV/Put";
        call(&metrics, put, None).await;
        call(&metrics, put, Some("0")).await;
        call(&metrics, put, Some("5")).await;
        call(&metrics, "/elastickv.v1.Internal/Forward", Some("5")).await;
        call(&metrics, "/grpc.health.v1.Health/Check", None).await;
        let page = metrics.render(&[], &NodeCounters::default());
        assert!(page.contains(&format!(
            "elastickv_rpc_requests_total{{method=\"{put}\"}} 3"
        )));
        // A trailers-only OK is no error; NotFound is one.
        assert!(!page.contains("code=\"Ok\""), "{page}");
        assert!(page.contains(&format!(
            "elastickv_rpc_errors_total{{method=\"{put}\",code=\"NotFound\"}} 1"
        )));
        // Internal and health calls are not counted.
        assert!(!page.contains("Internal/Forward"), "{page}");
        assert!(!page.contains("grpc.health"), "{page}");
    }
}
