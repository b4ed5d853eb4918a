//! The README's tour, as written: `elastickv dev` starts a ready cluster, the CLI
//! commands work against it, gRPC reflection and health answer (what grpcurl uses),
//! Prometheus metrics are served, SIGTERM stops it cleanly, and a second start on the
//! same data directory still has the data.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bounded, free_port};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const BIN: &str = env!("CARGO_BIN_EXE_elastickv");

struct Dev {
    child: Child,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `elastickv dev` and waits for its "ready" banner.
fn start_dev(base_port: u16, data_dir: &std::path::Path, metrics: u16) -> (Dev, Vec<String>) {
    let mut child = Command::new(BIN)
        .args([
            "dev",
            "--base-port",
            &base_port.to_string(),
            "--data-dir",
            &data_dir.display().to_string(),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start elastickv dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        let done = line.starts_with("Stop with Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no banner: {lines:?}");
    }
    assert!(
        lines.iter().any(|l| l.contains("dev cluster is ready")),
        "{lines:?}"
    );
    (Dev { child }, lines)
}

fn cli(args: &[&str], addr: &str, stdin: Option<&str>) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--addr", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("CLI output");
    assert!(
        out.status.success(),
        "elastickv {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn terminate(dev: &mut Dev) {
    let pid = dev.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = dev.child.try_wait().expect("wait") {
            assert!(status.success(), "dev exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "dev did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_as_written() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let base = free_port();
        let metrics = free_port();
        let addr = format!("127.0.0.1:{base}");
        let (mut dev, banner) = start_dev(base, dir.path(), metrics);
        assert!(banner.iter().any(|l| l.contains(&addr)), "{banner:?}");

        assert!(cli(&["put", "hello", "world"], &addr, None).starts_with("OK commit_ts="));
        assert_eq!(cli(&["get", "hello"], &addr, None).trim(), "\"world\"");
        let second = format!("127.0.0.1:{}", base + 2);
        assert_eq!(cli(&["get", "hello"], &second, None).trim(), "\"world\"");
        assert_eq!(cli(&["get", "nothing"], &addr, None).trim(), "(not found)");
        let txn = cli(
            &["txn"],
            &addr,
            Some("get hello\nput apple red\nput zebra stripes # two groups\n"),
        );
        assert!(txn.contains("hello = \"world\""), "{txn}");
        assert!(txn.contains("committed commit_ts="), "{txn}");
        let scan = cli(&["scan"], &addr, None);
        assert_eq!(
            scan.lines().collect::<Vec<_>>(),
            [
                "apple = \"red\"",
                "hello = \"world\"",
                "zebra = \"stripes\""
            ]
        );
        assert!(cli(&["delete", "apple"], &addr, None).starts_with("OK"));
        let status = cli(&["status"], &addr, None);
        assert!(status.contains("group 2:"), "{status}");
        assert!(status.contains("-> group 1"), "{status}");

        // What grpcurl needs: reflection lists the services, health says SERVING.
        let url = format!("http://{addr}");
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = reflection
            .server_reflection_info(tokio_stream_once(request))
            .await
            .unwrap()
            .into_inner();
        let reply = stream.message().await.unwrap().expect("a reply");
        let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
            panic!("unexpected reflection reply");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for wanted in [
            "RawKV",
            "TransactionalKV",
            "elastickv.v1.Distribution",
            "elastickv.v1.Admin",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing from {names:?}"
            );
        }
        let mut health = HealthClient::new(channel);
        let serving = health
            .check(HealthCheckRequest {
                service: "TransactionalKV".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serving.status, 1, "SERVING");

        let page = http_get(metrics, "/metrics").await;
        assert!(page.contains("elastickv_rpc_requests_total"), "{page}");
        assert!(
            page.contains("elastickv_raft_applied_index{group=\"0\"}"),
            "{page}"
        );

        terminate(&mut dev);
        // Same data directory: the cluster comes back with its data.
        let (mut dev, _) = start_dev(base, dir.path(), metrics);
        assert_eq!(cli(&["get", "hello"], &addr, None).trim(), "\"world\"");
        assert_eq!(cli(&["get", "apple"], &addr, None).trim(), "(not found)");
        terminate(&mut dev);
    })
    .await;
}

fn tokio_stream_once(
    request: ServerReflectionRequest,
) -> impl tokio_stream::Stream<Item = ServerReflectionRequest> {
    tokio_stream::iter(vec![request])
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to metrics");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
