//! `elastickv`: the server binary and its client commands.

use std::io::Read as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use elastickv_server::client::{self, Client};
use elastickv_server::config::NodeOptions;
use elastickv_server::run::{start_node, NodeSettings};
use elastickv_server::with_engine;

/// The C library's malloc took about a tenth of a loaded node's CPU time (`malloc`,
/// `free`, consolidation of its bins); mimalloc's thread-local free lists cost less
/// (docs/benchmarks.md). Off without the `mimalloc` feature.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "elastickv",
    version,
    about = "A distributed, Raft-replicated, transactional key-value store.",
    long_about = "A distributed, Raft-replicated, transactional key-value store.\n\nWith no command, `elastickv` runs `elastickv dev`: a local 3-node cluster to try things."
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Log filter (also RUST_LOG), for example `info` or `elastickv_server=debug`.
    #[arg(long, global = true, default_value = "info,openraft=warn")]
    log: String,
    /// Threads running the node's asynchronous work (gRPC, Raft, forwarding); the log
    /// writer and the state machines' apply loops have threads of their own. Default:
    /// one per core. Fewer than the cores when several nodes share a machine (see
    /// docs/operations.md).
    #[arg(long, global = true, env = "ELASTICKV_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    /// Threads applying committed writes, shared by every Raft group of the process
    /// (each group on one of them). Default: a thread per group. Fewer when several
    /// nodes share a machine's cores (see docs/operations.md).
    #[arg(long, global = true, env = "ELASTICKV_APPLY_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    apply_threads: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a ready local cluster (several nodes in this process) and print how to
    /// connect. Data persists in --data-dir; run it again to continue.
    Dev {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// How many Raft groups (shards).
        #[arg(long, default_value_t = 3)]
        groups: u64,
        /// The first node's port; the others use the next ones.
        #[arg(long, default_value_t = 50051)]
        base_port: u16,
        /// Where the nodes keep their data (one subdirectory each).
        #[arg(long, default_value = "elastickv-dev-data")]
        data_dir: PathBuf,
        /// The storage engine.
        #[arg(long)]
        engine: Option<String>,
        /// Serve Prometheus metrics of node 1 on this address.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Run one node of a cluster.
    Node {
        /// Read settings from this TOML file (flags win over it).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<NodeOptions>,
    },
    /// List the storage engines compiled into this binary.
    Engines,
    /// Write a key (a one-key transaction).
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        to: Target,
    },
    /// Read a key.
    Get {
        key: String,
        #[command(flatten)]
        to: Target,
    },
    /// Delete a key.
    Delete {
        key: String,
        #[command(flatten)]
        to: Target,
    },
    /// List keys in [START, END) (END empty: to the end).
    Scan {
        #[arg(default_value = "")]
        start: String,
        #[arg(default_value = "")]
        end: String,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        to: Target,
    },
    /// Run a transaction script from a file or stdin: lines of `get KEY`,
    /// `put KEY VALUE`, `delete KEY`, `scan START END LIMIT`; it commits at the end.
    Txn {
        /// The script file (default: stdin).
        file: Option<PathBuf>,
        /// Serializable instead of snapshot isolation.
        #[arg(long)]
        serializable: bool,
        #[command(flatten)]
        to: Target,
    },
    /// Show the cluster's state as the node sees it.
    Status {
        #[command(flatten)]
        to: Target,
    },
    /// Split the range holding KEY at KEY.
    Split {
        key: String,
        #[command(flatten)]
        to: Target,
    },
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The node to talk to.
    #[arg(long, default_value = "127.0.0.1:50051", env = "ELASTICKV_ADDR")]
    addr: String,
}

/// `println!` for the CLI's output: when standard output is gone (`elastickv scan |
/// head`), the process ends quietly, as Unix tools do, instead of panicking as
/// `println!` does on a closed pipe.
macro_rules! outln {
    () => {
        print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        print_line(format_args!($($arg)*))
    };
}

fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

fn init_logs(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = cli
        .apply_threads
        .and_then(|t| NonZeroUsize::new(usize::from(t)))
    {
        // Before any group starts, in a fresh process: the size cannot be set already.
        let _ = elastickv_raft::set_apply_threads(threads);
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Dev {
        nodes: 3,
        groups: 3,
        base_port: 50051,
        data_dir: PathBuf::from("elastickv-dev-data"),
        engine: None,
        metrics_listen: None,
    });
    let serving = matches!(command, Command::Dev { .. } | Command::Node { .. });
    if serving {
        init_logs(&cli.log_format, &cli.log);
    }
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Dev {
            nodes,
            groups,
            base_port,
            data_dir,
            engine,
            metrics_listen,
        } => dev(nodes, groups, base_port, data_dir, engine, metrics_listen).await,
        Command::Node { config, options } => {
            let options = match config {
                Some(path) => options.over(NodeOptions::from_file(&path)?),
                None => *options,
            };
            let engine = options.engine_name();
            let settings = options.settings()?;
            with_engine!(engine.as_str(), |open| serve_one(settings, open).await)?
        }
        Command::Engines => {
            outln!("{}", elastickv_server::engines::compiled().join("\n"));
            Ok(())
        }
        other => client_command(other).await.map_err(|e| describe(&*e)),
    }
}

fn describe(e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    match e.downcast_ref::<tonic::Status>() {
        Some(status) => format!("{:?}: {}", status.code(), status.message()),
        None => e.to_string(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve_one<E, F>(settings: NodeSettings, open: F) -> Result<(), String>
where
    E: elastickv_engine_api::MvccEngine,
    F: Fn(&std::path::Path) -> Result<E, elastickv_engine_api::EngineError>,
{
    let id = settings.cluster.node_id;
    let node = start_node(settings, open)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(node = id, addr = %node.local_addr(), engine = %node.cluster().config().engine_name, "serving");
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn dev(
    nodes: u64,
    groups: u64,
    base_port: u16,
    data_dir: PathBuf,
    engine: Option<String>,
    metrics_listen: Option<SocketAddr>,
) -> Result<(), String> {
    if nodes == 0 || nodes > 9 {
        return Err("--nodes must be in [1, 9]".into());
    }
    let engine = engine.unwrap_or_else(|| elastickv_server::engines::default_engine().to_string());
    elastickv_server::engines::check(&engine)?;
    let addr = |i: u64| format!("127.0.0.1:{}", u64::from(base_port) + i - 1);
    let members: String = (1..=nodes)
        .map(|i| format!("{i}={}", addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut settings = Vec::new();
    for i in 1..=nodes {
        let options = NodeOptions {
            id: Some(i),
            listen: Some(addr(i).parse().map_err(|e| format!("bad port: {e}"))?),
            data_dir: Some(data_dir.join(format!("node-{i}"))),
            engine: Some(engine.clone()),
            initial_cluster: Some(members.clone()),
            groups: Some(groups),
            metrics_listen: if i == 1 { metrics_listen } else { None },
            ..NodeOptions::default()
        };
        settings.push(options.settings()?);
    }
    with_engine!(engine.as_str(), |open| serve_dev(
        settings, open, &engine, &data_dir
    )
    .await)?
}

async fn serve_dev<E, F>(
    settings: Vec<NodeSettings>,
    open: F,
    engine: &str,
    data_dir: &std::path::Path,
) -> Result<(), String>
where
    E: elastickv_engine_api::MvccEngine,
    F: Fn(&std::path::Path) -> Result<E, elastickv_engine_api::EngineError> + Clone,
{
    let mut running = Vec::new();
    for s in settings {
        running.push(
            start_node(s, open.clone())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    // Ready means: the route table is known and every group answers a read.
    let first = running[0].local_addr().to_string();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(mut c) = Client::connect(&first).await {
            let mut all = false;
            if let Ok(table) = c.routes().await {
                all = true;
                for route in table.routes {
                    let probe = if route.start.is_empty() {
                        vec![1]
                    } else {
                        route.start
                    };
                    all &= c.raw_get(&probe).await.is_ok();
                }
            }
            if all {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !ready {
        return Err("the dev cluster did not become ready within 30 s".into());
    }
    let addrs: Vec<String> = running.iter().map(|n| n.local_addr().to_string()).collect();
    outln!(
        "elastickv dev cluster is ready: {} nodes, engine {engine}, data in {}",
        addrs.len(),
        data_dir.display()
    );
    for (i, a) in addrs.iter().enumerate() {
        outln!("  node {}: {a}", i + 1);
    }
    outln!();
    outln!("Try:");
    outln!("  elastickv put hello world --addr {first}");
    outln!("  elastickv get hello --addr {first}");
    outln!("  elastickv status --addr {first}");
    outln!("  grpcurl -plaintext -d '{{\"key\":\"aGVsbG8=\"}}' {first} TransactionalKV/Get");
    outln!("Stop with Ctrl-C.");
    shutdown_signal().await;
    tracing::info!("shutting down the dev cluster");
    let mut stopping = tokio::task::JoinSet::new();
    for node in running {
        stopping.spawn(node.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    Ok(())
}

async fn client_command(command: Command) -> Result<(), client::Error> {
    match command {
        Command::Put { key, value, to } => {
            let ts = Client::connect(&to.addr)
                .await?
                .put(key.as_bytes(), value.as_bytes())
                .await?;
            outln!("OK commit_ts={ts}");
        }
        Command::Get { key, to } => {
            let v = Client::connect(&to.addr).await?.get(key.as_bytes()).await?;
            outln!("{}", client::show(v.as_deref()));
        }
        Command::Delete { key, to } => {
            let ts = Client::connect(&to.addr)
                .await?
                .delete(key.as_bytes())
                .await?;
            outln!("OK commit_ts={ts}");
        }
        Command::Scan {
            start,
            end,
            limit,
            to,
        } => {
            let pairs = Client::connect(&to.addr)
                .await?
                .scan(start.as_bytes(), end.as_bytes(), limit)
                .await?;
            for (k, v) in pairs {
                outln!(
                    "{} = {}",
                    String::from_utf8_lossy(&k),
                    client::show(Some(&v))
                );
            }
        }
        Command::Txn {
            file,
            serializable,
            to,
        } => {
            let script = match file {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let mut c = Client::connect(&to.addr).await?;
            for line in client::run_script(&mut c, &script, serializable).await? {
                outln!("{line}");
            }
        }
        Command::Status { to } => {
            let mut c = Client::connect(&to.addr).await?;
            let s = c.status().await?;
            outln!(
                "node {} at {} (engine {}), route table v{}",
                s.node_id,
                s.addr,
                s.engine,
                s.route_version
            );
            outln!("members:");
            for n in &s.nodes {
                outln!("  {} {}", n.id, n.addr);
            }
            outln!("groups:");
            for g in &s.groups {
                outln!(
                    "  group {}: {} leader={} term={} commit={} applied={} voters={:?}",
                    g.group_id,
                    g.role,
                    g.leader_id,
                    g.term,
                    g.committed_index,
                    g.applied_index,
                    g.voters
                );
            }
            if let Ok(r) = c.routes().await {
                outln!("routes:");
                for route in r.routes {
                    outln!(
                        "  [{}, {}) -> group {}",
                        client::show(Some(&route.start)),
                        if route.end.is_empty() {
                            "end".into()
                        } else {
                            client::show(Some(&route.end))
                        },
                        route.group_id
                    );
                }
            }
        }
        Command::Split { key, to } => {
            let r = Client::connect(&to.addr)
                .await?
                .split(key.as_bytes())
                .await?;
            outln!("route table v{} has {} ranges", r.version, r.routes.len());
        }
        Command::Dev { .. } | Command::Node { .. } | Command::Engines => {
            return Err("not a client command".into())
        }
    }
    Ok(())
}
