#!/usr/bin/env bash
# elastickv against etcd on this machine, same workloads, same clients, in one run:
# a 3-member etcd and a 3-node elastickv cluster on loopback, each with its data on the
# same disk and every write synced to its log before it is acknowledged;
# `elastickv-load` drives both in alternation at each client count, and the
# side-by-side table replaces the marked section of docs/benchmarks.md.
#
#   bench/compare-etcd.sh                 # the full run (~4 minutes once built)
#   QUICK=1 bench/compare-etcd.sh         # a smoke run: 2 client counts, 2 s each
#
# Settings (environment):
#   ENGINE=redb            elastickv's storage engine (mem, redb, lmdb, rocks; rocks builds
#                          the server with the engine-rocks feature: RocksDB's C++ adds
#                          10-15 minutes to the first release build)
#   CLIENTS="1 16 64 256"  client counts
#   DURATION=10s           per run
#   WORKLOADS="put get"    any of put get a b c e f txn (reads run on preloaded keys)
#   KEYS=100000            key space (8-byte keys, 256-byte values)
#   EKV_GROUPS=3           elastickv Raft groups
#   EKV_WORKER_THREADS=1   each elastickv node's --worker-threads (the three nodes share
#                          the machine's cores; empty: one per core)
#   EKV_APPLY_THREADS=1    each elastickv node's --apply-threads (empty: one per group)
#   EKV_FLAGS=             more `elastickv node` flags (e.g. "--heartbeat-ms 500")
#   EKV_LOAD_FLAGS=        more `elastickv-load` flags for the elastickv runs only
#                          (e.g. "--leader-routing")
#   WORK_DIR=/var/tmp/elastickv-compare-etcd   data, logs and JSON reports (wiped first)
#   DOCS=docs/benchmarks.md  where the table goes (empty: nowhere; QUICK=1: nowhere unless set)
#   BUILD=1                0: use the binaries already built
#   ETCD_BASE_PORT=23790, EKV_BASE_PORT=25051
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=${QUICK:-0}
ENGINE=${ENGINE:-redb}
if [ "$QUICK" = 1 ]; then
  CLIENTS=${CLIENTS:-"1 16"}
  DURATION=${DURATION:-2s}
  KEYS=${KEYS:-10000}
  DOCS=${DOCS:-}
else
  CLIENTS=${CLIENTS:-"1 16 64 256"}
  DURATION=${DURATION:-10s}
  KEYS=${KEYS:-100000}
  DOCS=${DOCS-docs/benchmarks.md}
fi
WORKLOADS=${WORKLOADS:-"put get"}
EKV_GROUPS=${EKV_GROUPS:-3}
EKV_WORKER_THREADS=${EKV_WORKER_THREADS-1}
EKV_APPLY_THREADS=${EKV_APPLY_THREADS-1}
EKV_FLAGS=${EKV_FLAGS:-}
EKV_LOAD_FLAGS=${EKV_LOAD_FLAGS:-}
WORK_DIR=${WORK_DIR:-/var/tmp/elastickv-compare-etcd}
BUILD=${BUILD:-1}
ETCD_BASE_PORT=${ETCD_BASE_PORT:-23790}
EKV_BASE_PORT=${EKV_BASE_PORT:-25051}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

log() { echo "[compare-etcd $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- etcd --------------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
  log "installing etcd-server (Debian package)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
ETCD_VERSION=$(etcd --version | awk '/etcd Version/ {print $3}')

# --- build -------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "building elastickv and elastickv-load (release) into $TARGET_DIR"
  # Two builds: the server with its default engines (and RocksDB when it is the engine
  # compared), the load generator without any (the bench crate's defaults include
  # RocksDB, which the client does not need).
  SERVER_FEATURES=()
  [ "$ENGINE" = rocks ] && SERVER_FEATURES=(--features engine-rocks)
  cargo build --release -p elastickv-server --bin elastickv "${SERVER_FEATURES[@]}"
  cargo build --release -p elastickv-bench --no-default-features --features mimalloc --bin elastickv-load
fi
for b in elastickv elastickv-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (BUILD=1 builds it)"
done
# `elastickv engines` lists the engines this binary was built with.
ENGINES_BUILT=$("$BIN/elastickv" engines)
grep -qx "$ENGINE" <<<"$ENGINES_BUILT" ||
  die "$BIN/elastickv has no engine $ENGINE (it has: $(tr '\n' ' ' <<<"$ENGINES_BUILT")); ENGINE=rocks needs --features engine-rocks, which BUILD=1 adds"

# --- clusters ----------------------------------------------------------------------
rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR/json" "$WORK_DIR/logs"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  [ "$status" -eq 0 ] || log "failed; logs are in $WORK_DIR/logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ETCD_ENDPOINTS=()
ETCD_CLUSTER=""
for i in 1 2 3; do
  client=$((ETCD_BASE_PORT + i - 1))
  peer=$((ETCD_BASE_PORT + 10 + i - 1))
  port_free "$client" && port_free "$peer" || die "port $client or $peer is in use"
  ETCD_ENDPOINTS+=("127.0.0.1:$client")
  ETCD_CLUSTER+="${ETCD_CLUSTER:+,}m$i=http://127.0.0.1:$peer"
done
log "starting etcd $ETCD_VERSION: 3 members on ${ETCD_ENDPOINTS[*]}"
for i in 1 2 3; do
  client=$((ETCD_BASE_PORT + i - 1))
  peer=$((ETCD_BASE_PORT + 10 + i - 1))
  # etcd fsyncs its WAL before acknowledging a write; 3.4 has no flag to turn it off.
  etcd --name "m$i" --data-dir "$WORK_DIR/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new \
    --initial-cluster-token compare-etcd \
    --logger zap --log-outputs stderr --log-level warn \
    >"$WORK_DIR/logs/etcd-$i.log" 2>&1 &
  PIDS+=($!)
done

EKV_ENDPOINTS=()
EKV_CLUSTER=""
for i in 1 2 3; do
  port=$((EKV_BASE_PORT + i - 1))
  metrics=$((EKV_BASE_PORT + 10 + i - 1))
  port_free "$port" && port_free "$metrics" || die "port $port or $metrics is in use"
  EKV_ENDPOINTS+=("127.0.0.1:$port")
  EKV_CLUSTER+="${EKV_CLUSTER:+,}$i=127.0.0.1:$port"
done
log "starting elastickv: 3 nodes on ${EKV_ENDPOINTS[*]}, engine $ENGINE, $EKV_GROUPS groups"
for i in 1 2 3; do
  port=$((EKV_BASE_PORT + i - 1))
  metrics=$((EKV_BASE_PORT + 10 + i - 1))
  "$BIN/elastickv" node --id "$i" --listen "127.0.0.1:$port" \
    --data-dir "$WORK_DIR/elastickv-$i" --engine "$ENGINE" --groups "$EKV_GROUPS" \
    --initial-cluster "$EKV_CLUSTER" --metrics-listen "127.0.0.1:$metrics" \
    --log warn ${EKV_WORKER_THREADS:+--worker-threads $EKV_WORKER_THREADS} \
    ${EKV_APPLY_THREADS:+--apply-threads $EKV_APPLY_THREADS} $EKV_FLAGS \
    >"$WORK_DIR/logs/elastickv-$i.log" 2>&1 &
  PIDS+=($!)
done

wait_until() { # what, seconds, command...
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up in ${seconds}s"
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || die "a server exited early; see $WORK_DIR/logs"
    done
    sleep 0.2
  done
}
for e in "${ETCD_ENDPOINTS[@]}"; do
  wait_until "etcd at $e" 60 curl -sf "http://$e/health"
done
# A scan reads every group (through its leader), so it answers once all groups serve.
for e in "${EKV_ENDPOINTS[@]}"; do
  wait_until "elastickv at $e" 60 "$BIN/elastickv" scan --limit 1 --addr "$e"
done
log "both clusters serve"

# Log syncs so far: etcd's WAL fsyncs and elastickv's Raft log syncs, every member.
log_syncs() { # etcd|elastickv
  local sum=0 n url
  if [ "$1" = etcd ]; then
    for e in "${ETCD_ENDPOINTS[@]}"; do
      n=$(curl -sf "http://$e/metrics" |
        awk '/^etcd_disk_wal_fsync_duration_seconds_count/ {s += $2} END {printf "%d", s}')
      sum=$((sum + n))
    done
  else
    for i in 1 2 3; do
      url="http://127.0.0.1:$((EKV_BASE_PORT + 10 + i - 1))/metrics"
      # The node's shared log when the groups use it (one sync serves every group),
      # else the groups' own logs.
      n=$(curl -sf "$url" | awk '/^elastickv_raft_shared_log_syncs_total/ {shared += $2}
        /^elastickv_raft_log_syncs_total/ {groups += $2}
        END {printf "%d", (shared > 0 ? shared : groups)}')
      sum=$((sum + n))
    done
  fi
  echo "$sum"
}

endpoints_of() { # etcd|elastickv
  local IFS=,
  if [ "$1" = etcd ]; then echo "${ETCD_ENDPOINTS[*]}"; else echo "${EKV_ENDPOINTS[*]}"; fi
}

# One run of the load generator; the JSON report gets the log syncs it caused.
run_load() { # system workload clients out-file extra-args...
  local system=$1 workload=$2 clients=$3 out=$4
  shift 4
  local before after extra=()
  [ "$system" = elastickv ] && read -r -a extra <<<"$EKV_LOAD_FLAGS"
  before=$(log_syncs "$system")
  "$BIN/elastickv-load" --target "$system" --endpoints "$(endpoints_of "$system")" \
    --workload "$workload" --clients "$clients" --keys "$KEYS" --quiet \
    --json "$out" "${extra[@]}" "$@" >/dev/null
  after=$(log_syncs "$system")
  python3 - "$out" "$((after - before))" <<'EOF'
import json, sys
path, syncs = sys.argv[1], int(sys.argv[2])
report = json.load(open(path))
report["log_syncs"] = syncs
json.dump(report, open(path, "w"))
EOF
}

is_read_workload() { [ "$1" != put ]; }

# --- the runs ----------------------------------------------------------------------
STARTED=$SECONDS
preloaded=0
step=0
for workload in $WORKLOADS; do
  if is_read_workload "$workload" && [ "$preloaded" = 0 ]; then
    for system in etcd elastickv; do
      log "$system: preloading $KEYS keys (64 clients)"
      run_load "$system" get 64 "$WORK_DIR/json/$system-preload.json" --preload --ops 1
    done
    preloaded=1
  fi
  for clients in $CLIENTS; do
    # Alternate which system goes first, so that neither always runs on a warmer disk.
    if [ $((step % 2)) = 0 ]; then order="etcd elastickv"; else order="elastickv etcd"; fi
    step=$((step + 1))
    for system in $order; do
      out="$WORK_DIR/json/$system-$workload-c$clients.json"
      run_load "$system" "$workload" "$clients" "$out" --duration "$DURATION"
      python3 - "$out" <<'EOF' >&2
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
print(f"[compare-etcd] {r['target']:<26} {r['workload']:<4} {r['clients']:>4} clients: "
      f"{t['ops_per_s']:>9,.0f} ops/s  p99 {t['p99_us'] / 1000:7.2f} ms  "
      f"errors {t['errors_total']}  log syncs/op {r['log_syncs'] / max(t['ops'], 1):.3f}")
EOF
    done
  done
done
RUN_SECONDS=$((SECONDS - STARTED))
log "runs done in ${RUN_SECONDS}s; stopping the clusters"
cleanup
PIDS=()

# --- the table ---------------------------------------------------------------------
TABLE="$WORK_DIR/table.md"
COMMAND="bench/compare-etcd.sh"
[ "$QUICK" = 1 ] && COMMAND="QUICK=1 $COMMAND"
COMMAND="ENGINE=$ENGINE CLIENTS=\"$CLIENTS\" DURATION=$DURATION KEYS=$KEYS $COMMAND"
[ -n "$EKV_FLAGS" ] && COMMAND="EKV_FLAGS=\"$EKV_FLAGS\" $COMMAND"
[ "$EKV_WORKER_THREADS" != 1 ] && COMMAND="EKV_WORKER_THREADS=$EKV_WORKER_THREADS $COMMAND"
[ "$EKV_APPLY_THREADS" != 1 ] && COMMAND="EKV_APPLY_THREADS=$EKV_APPLY_THREADS $COMMAND"
[ -n "$EKV_LOAD_FLAGS" ] && COMMAND="EKV_LOAD_FLAGS=\"$EKV_LOAD_FLAGS\" $COMMAND"
ENGINE=$ENGINE EKV_GROUPS=$EKV_GROUPS EKV_WORKER_THREADS=$EKV_WORKER_THREADS EKV_APPLY_THREADS=$EKV_APPLY_THREADS EKV_FLAGS=$EKV_FLAGS EKV_LOAD_FLAGS=$EKV_LOAD_FLAGS ETCD_VERSION=$ETCD_VERSION CLIENTS=$CLIENTS \
  DURATION=$DURATION KEYS=$KEYS WORKLOADS=$WORKLOADS RUN_SECONDS=$RUN_SECONDS \
  COMMAND=$COMMAND WORK_DIR=$WORK_DIR \
  python3 - "$WORK_DIR/json" "$TABLE" <<'EOF'
import datetime, glob, json, os, platform, subprocess, sys

env = os.environ
json_dir, table_path = sys.argv[1], sys.argv[2]
reports = {}
for path in glob.glob(os.path.join(json_dir, "*.json")):
    r = json.load(open(path))
    system = "etcd" if r["target"].startswith("etcd") else "elastickv"
    if r["ops_limit"] == 1:
        reports[(system, "preload", 0)] = r
    else:
        reports[(system, r["workload"], r["clients"])] = r

def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

def run(*args):
    return subprocess.run(args, capture_output=True, text=True).stdout.strip()

mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
commit = run("git", "rev-parse", "--short", "HEAD") or "unknown"
dirty = " with uncommitted changes" if run("git", "status", "--porcelain") else ""
fs = run("df", "-T", env["WORK_DIR"]).splitlines()[-1].split()[1]
clients = [int(c) for c in env["CLIENTS"].split()]
lines = [
    f"Run finished {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
    f"{os.cpu_count()} cores ({cpu()}), {mem_gib:.0f} GiB, {fs}, both clusters' data on "
    f"the same disk; elastickv {commit}{dirty} (engine {env['ENGINE']}, "
    f"{env['EKV_GROUPS']} Raft groups, "
    f"{'--worker-threads ' + env['EKV_WORKER_THREADS'] if env['EKV_WORKER_THREADS'] else 'a worker thread per core'}, "
    f"{'--apply-threads ' + env['EKV_APPLY_THREADS'] if env['EKV_APPLY_THREADS'] else 'an apply thread per group'}"
    f"{', node flags ' + env['EKV_FLAGS'] if env['EKV_FLAGS'] else ''}{', load generator flags ' + env['EKV_LOAD_FLAGS'] if env['EKV_LOAD_FLAGS'] else ''}), etcd {env['ETCD_VERSION']} (Debian "
    f"etcd-server). Each cell: {env['DURATION']} of closed-loop clients, one gRPC "
    f"connection each, spread over the 3 members; {int(env['KEYS']):,} keys, "
    f"256-byte values, uniform key choice. All runs took {env['RUN_SECONDS']} s.",
    "",
    f"Command: `{env['COMMAND']}`",
    "",
    "| workload | clients | elastickv ops/s | etcd ops/s | elastickv / etcd "
    "| elastickv p99 ms | etcd p99 ms | elastickv log syncs / op | etcd WAL fsyncs / op "
    "| errors (elastickv / etcd) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
per_op = lambda r: r["log_syncs"] / max(r["total"]["ops"], 1)
for workload in env["WORKLOADS"].split():
    for c in clients:
        e = reports.get(("elastickv", workload, c))
        d = reports.get(("etcd", workload, c))
        if not e or not d:
            continue
        et, dt = e["total"], d["total"]
        ratio = et["ops_per_s"] / dt["ops_per_s"] if dt["ops_per_s"] else float("inf")
        lines.append(
            f"| {workload} | {c} | {et['ops_per_s']:,.0f} | {dt['ops_per_s']:,.0f} "
            f"| **{ratio:.2f}x** | {et['p99_us'] / 1000:.2f} | {dt['p99_us'] / 1000:.2f} "
            f"| {per_op(e):.3f} | {per_op(d):.3f} "
            f"| {et['errors_total']} / {dt['errors_total']} |")
pe, pd = reports.get(("elastickv", "preload", 0)), reports.get(("etcd", "preload", 0))
if pe and pd:
    lines += ["", f"Preload of the {pe['preload']['keys']:,} keys (64 clients, puts): "
              f"elastickv {pe['preload']['keys_per_s']:,.0f} keys/s, "
              f"etcd {pd['preload']['keys_per_s']:,.0f} keys/s."]
lines += ["", "Log syncs / op: every member's log syncs (elastickv: "
          "`elastickv_raft_shared_log_syncs_total`, or with `--raft-log group` "
          "`elastickv_raft_log_syncs_total` of all groups; etcd: "
          "`etcd_disk_wal_fsync_duration_seconds_count`) during the run, divided by "
          "the operations done."]
open(table_path, "w").write("\n".join(lines) + "\n")
EOF
cat "$TABLE"

if [ -n "$DOCS" ]; then
  python3 - "$DOCS" "$TABLE" <<'EOF'
import sys
docs_path, table_path = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare-etcd:begin -->", "<!-- compare-etcd:end -->"
docs = open(docs_path).read()
table = open(table_path).read()
block = f"{begin}\n<!-- Written by bench/compare-etcd.sh; edits here are overwritten. -->\n\n{table}\n{end}"
if begin in docs and end in docs:
    head, rest = docs.split(begin, 1)
    tail = rest.split(end, 1)[1]
    docs = head + block + tail
else:
    docs = docs.rstrip("\n") + "\n\n" + block + "\n"
open(docs_path, "w").write(docs)
EOF
  log "wrote the table into $DOCS"
fi
log "JSON reports and logs: $WORK_DIR"
