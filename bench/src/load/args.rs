//! The command line of `elastickv-load`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::run::{Config, Limit, DEFAULT_SEED};
use super::workload::Workload;
use super::zipf::Distribution;

/// The key distributions on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DistributionArg {
    /// Every key equally likely.
    Uniform,
    /// YCSB's zipfian (theta `--zipf-theta`, scrambled unless `--unscrambled`).
    Zipfian,
}

/// The systems the load generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// elastickv's gRPC services.
    Elastickv,
    /// etcd's v3 gRPC KV service.
    Etcd,
}

/// A closed-loop load generator for elastickv and etcd: N concurrent clients, each sending its
/// next request when the previous one returns, for a duration or an operation count.
/// Prints a table of throughput, latency percentiles and errors per operation type.
#[derive(Debug, Clone, Parser)]
#[command(name = "elastickv-load", version)]
pub struct Args {
    /// The workload: put (single-key writes), get (single-key reads), YCSB a (50/50
    /// read/update), b (95/5), c (reads), e (scans + 5% inserts), f (reads +
    /// read-modify-write transactions), txn (two-key transfers across groups).
    #[arg(long, short = 'w', value_enum, default_value = "put")]
    pub workload: Workload,
    /// The system under test.
    #[arg(long, value_enum, default_value = "elastickv")]
    pub target: TargetArg,
    /// Nodes to connect to, comma-separated; connections are spread over them in turn.
    #[arg(long, value_name = "HOST:PORT,...", default_value = "127.0.0.1:50051")]
    pub endpoints: String,
    /// Concurrent closed-loop clients.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub clients: usize,
    /// gRPC connections (HTTP/2, multiplexed) the clients share [default: one per client].
    #[arg(long)]
    pub conns: Option<usize>,
    /// How long to run (`10s`, `500ms`, `2m`; a bare number is seconds) [default: 10s].
    #[arg(long, short = 'd', conflicts_with = "ops")]
    pub duration: Option<String>,
    /// Run this many operations in all instead of for a duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// The key-space size: keys 0..N, each an 8-byte key like `a0000001`.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value = "uniform")]
    pub distribution: DistributionArg,
    /// The zipfian skew, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,
    /// Zipfian without scrambling: key 0 is the most popular, key 1 the next, ...
    #[arg(long)]
    pub unscrambled: bool,
    /// Bytes per written value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Write every key of the key space before the run (for the read workloads).
    #[arg(long)]
    pub preload: bool,
    /// Single-key reads and writes through elastickv's RawKV (RawGet, RawPut) instead
    /// of TransactionalKV (workloads put, get, a, b, c).
    #[arg(long)]
    pub raw: bool,
    /// Send each single-key read and write to its key's leader (elastickv: the client
    /// asks the cluster where the leaders are, every 5 s) instead of the connection's
    /// node, which forwards it.
    #[arg(long)]
    pub leader_routing: bool,
    /// Scans (workload e) read 1 to this many keys.
    #[arg(long, default_value_t = 10)]
    pub max_scan: usize,
    /// Retries of an operation that conflicted (Aborted) before it counts as an error.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Client-side limit on one attempt of an operation (then DeadlineExceeded).
    #[arg(long, default_value = "5s")]
    pub timeout: String,
    /// Seed of the clients' random choices and of the key scrambling.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Also write the report as JSON to this file (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(format!("{text:?} is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl Args {
    /// The run's settings, checked.
    pub fn config(&self) -> Result<Config, String> {
        let endpoints: Vec<String> = self
            .endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        let limit = match (self.ops, &self.duration) {
            (Some(n), _) => Limit::Ops(n),
            (None, Some(d)) => {
                Limit::Duration(parse_duration(d).map_err(|e| format!("--duration: {e}"))?)
            }
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        let distribution = match self.distribution {
            DistributionArg::Uniform => Distribution::Uniform,
            DistributionArg::Zipfian => Distribution::Zipfian {
                theta: self.zipf_theta,
                scrambled: !self.unscrambled,
            },
        };
        if self.raw && self.target != TargetArg::Elastickv {
            return Err("--raw applies to --target elastickv only".into());
        }
        if self.leader_routing && self.target != TargetArg::Elastickv {
            return Err("--leader-routing applies to --target elastickv only".into());
        }
        let config = Config {
            workload: self.workload,
            endpoints,
            clients: self.clients,
            conns: self.conns.unwrap_or(self.clients),
            limit,
            keys: self.keys,
            distribution,
            value_size: self.value_size,
            preload: self.preload,
            raw: self.raw,
            leader_routing: self.leader_routing,
            max_scan: self.max_scan,
            retries: self.retries,
            timeout: parse_duration(&self.timeout).map_err(|e| format!("--timeout: {e}"))?,
            seed: self.seed,
            progress: !self.quiet,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses a command line (the program name first) into arguments and checked settings.
/// Errors are the message to print (clap's usage errors included).
pub fn parse<I, T>(args: I) -> Result<(Args, Config), String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = Args::try_parse_from(args).map_err(|e| e.to_string())?;
    let config = args.config()?;
    Ok((args, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Config, String> {
        parse(std::iter::once("elastickv-load").chain(line.split_whitespace())).map(|(_, c)| c)
    }

    fn error(line: &str) -> String {
        parse_line(line).expect_err(line)
    }

    #[test]
    fn defaults_and_a_full_command_line() {
        let c = parse_line("").unwrap();
        assert_eq!(c.workload, Workload::Put);
        assert_eq!(c.endpoints, vec!["127.0.0.1:50051"]);
        assert_eq!(
            (c.clients, c.conns, c.keys, c.value_size),
            (16, 16, 100_000, 256)
        );
        assert_eq!(c.limit, Limit::Duration(Duration::from_secs(10)));
        assert_eq!(c.distribution, Distribution::Uniform);
        assert!(!c.raw && !c.preload && c.progress);

        let c = parse_line(
            "--workload a --endpoints 127.0.0.1:1,127.0.0.1:2 --clients 8 --conns 2 \
             --duration 1.5s --keys 1000 --distribution zipfian --zipf-theta 0.9 \
             --unscrambled --value-size 100 --preload --raw --quiet",
        )
        .unwrap();
        assert_eq!(c.workload, Workload::A);
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!((c.clients, c.conns), (8, 2));
        assert_eq!(c.limit, Limit::Duration(Duration::from_millis(1500)));
        assert_eq!(
            c.distribution,
            Distribution::Zipfian {
                theta: 0.9,
                scrambled: false
            }
        );
        assert!(c.raw && c.preload && !c.progress);
        assert_eq!(parse_line("-w txn --ops 50").unwrap().limit, Limit::Ops(50));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "10x", "-1s", "1.2.3s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_command_lines_are_explained() {
        assert!(error("--workload z").contains("invalid value"));
        assert!(error("--clients 0").contains("--clients"));
        assert!(error("--clients 4 --conns 5").contains("--conns"));
        assert!(error("--conns 0").contains("--conns"));
        assert!(error("--duration 5s --ops 10").contains("cannot be used with"));
        assert!(error("--duration 0s").contains("--duration"));
        assert!(error("--duration 5q").contains("unknown unit"));
        assert!(error("--ops 0").contains("--ops"));
        assert!(error("--keys 0").contains("--keys"));
        assert!(error("-w txn --keys 1").contains("--keys"));
        assert!(error("-w txn --value-size 4").contains("--value-size"));
        assert!(error("--value-size 999999999").contains("--value-size"));
        assert!(error("--distribution zipfian --zipf-theta 1").contains("--zipf-theta"));
        assert!(error("--distribution pareto").contains("invalid value"));
        assert!(error("--endpoints localhost").contains("HOST:PORT"));
        assert!(error("--endpoints :50051").contains("HOST:PORT"));
        assert!(error("--endpoints ,").contains("no endpoint"));
        assert!(error("-w e --raw").contains("--raw"));
        assert!(error("-w f --raw").contains("transactions"));
        assert!(error("-w txn --raw").contains("transactions"));
        assert!(error("--max-scan 0").contains("--max-scan"));
        assert!(error("--timeout 0s").contains("--timeout"));
        assert!(error("--clients many").contains("invalid value"));
        assert!(error("--nosuch").contains("unexpected argument"));
        assert!(error("--target etcd --raw").contains("--raw"));
        assert!(error("--target etcd --leader-routing").contains("--leader-routing"));
        assert!(
            parse_line("--leader-routing")
                .expect("parses")
                .leader_routing
        );
        assert!(error("--target zookeeper").contains("invalid value"));
        assert!(parse_line("-w c --raw").is_ok());
        assert!(parse_line("-w txn --target etcd").is_ok());
    }
}
