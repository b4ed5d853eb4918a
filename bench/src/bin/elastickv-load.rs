//! `elastickv-load`: a closed-loop load generator for elastickv and etcd (see
//! `docs/benchmarks.md`, "Load generator", and `elastickv-load --help`).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use elastickv_bench::load::args::{Args, TargetArg};
use elastickv_bench::load::{run_until, Connector, ElasticKvConnector, EtcdConnector};

/// The generator shares the machine's cores with the clusters it measures; with the C
/// library's malloc, allocation took about a sixth of its CPU time at 256 clients
/// (docs/benchmarks.md). Off without the `mimalloc` feature.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse(); // --help, --version and usage errors exit here
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("elastickv-load: {e}");
            std::process::exit(2);
        }
    };
    let connector: Box<dyn Connector> = match args.target {
        TargetArg::Elastickv => Box::new(ElasticKvConnector {
            raw: config.raw,
            leader_routing: config.leader_routing,
        }),
        TargetArg::Etcd => Box::new(EtcdConnector),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let report = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("elastickv-load: stopping (Ctrl-C again to abort)");
                flag.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        run_until(&config, connector.as_ref(), stop).await
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("elastickv-load: {e}");
            std::process::exit(1);
        }
    };
    let to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    if to_stdout {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
        let _ = std::io::stdout().flush();
    }
    if let Some(path) = args.json.as_deref().filter(|_| !to_stdout) {
        if let Err(e) = std::fs::write(path, report.json() + "\n") {
            eprintln!("elastickv-load: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    // Runtime shutdown does not wait for the Ctrl-C listener.
    runtime.shutdown_background();
}
