#!/usr/bin/env bash
# CPU per write of a 3-node elastickv cluster, two builds or two settings side by side.
#
# Starts a fresh 3-node cluster (redb, 3 groups, loopback) for each run, warms it up
# with a 2 s put run, then measures a put run with `elastickv-load --leader-routing`:
# puts per second, the three nodes' CPU time per put (utime + stime from
# /proc/<pid>/stat), their Raft log syncs per put (from /metrics) and the load
# generator's own CPU time per put (it shares the cores). Runs alternate
# A, B, A, B, ... so that both see the same machine noise. With ETCD=1 each round also
# measures a 3-member etcd the same way (needs `etcd` on the PATH).
#
#   A=/path/to/elastickv B=/path/to/other/elastickv bench/cpu-ab.sh
#   A_FLAGS="--raft-transport unary" B_FLAGS="--raft-transport stream" bench/cpu-ab.sh
#   A_LOAD=/path/to/elastickv-load B_LOAD=/path/to/other/elastickv-load bench/cpu-ab.sh
#
# Settings (environment):
#   A, B          the elastickv binaries [default: both target/release/elastickv]
#   A_FLAGS, B_FLAGS   more `elastickv node` flags for each side
#   LOAD          the elastickv-load binary [default: target/release/elastickv-load]
#   A_LOAD, B_LOAD     the load generator for each side (and etcd's: A_LOAD) [default: LOAD]
#   CLIENTS=16    closed-loop clients      ROUNDS=3      A/B pairs
#   DURATION=5    seconds measured         ENGINE=redb   GROUPS_N=3
#   ETCD=0        also measure etcd        WORK_DIR=/var/tmp/elastickv-cpu-ab (wiped)
#   ETCD_B_ENV=   with ETCD=1, also measure etcd with this environment each round
#                 (e.g. "GOMAXPROCS=1"), as "etcd-B"
#   EKV=1         measure elastickv (EKV=0 with ETCD=1: etcd only)
#   PRELOAD=0     puts (64 clients) before the warm-up, so the store is not empty
#                 (compare-etcd.sh preloads 100000 keys)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
A=${A:-$TARGET/release/elastickv}
B=${B:-$TARGET/release/elastickv}
A_FLAGS=${A_FLAGS:-}
B_FLAGS=${B_FLAGS:-}
LOAD=${LOAD:-$TARGET/release/elastickv-load}
A_LOAD=${A_LOAD:-$LOAD}
B_LOAD=${B_LOAD:-$LOAD}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
ENGINE=${ENGINE:-redb}
GROUPS_N=${GROUPS_N:-3}
ETCD=${ETCD:-0}
ETCD_B_ENV=${ETCD_B_ENV:-}
EKV=${EKV:-1}
PRELOAD=${PRELOAD:-0}
WORK_DIR=${WORK_DIR:-/var/tmp/elastickv-cpu-ab}
BASE_PORT=${BASE_PORT:-26051}

for bin in "$A" "$B" "$A_LOAD" "$B_LOAD"; do
  [ -x "$bin" ] || { echo "cpu-ab: $bin is not an executable (build with --release first)" >&2; exit 1; }
done
if [ "$ETCD" = 1 ] && ! command -v etcd >/dev/null; then
  echo "cpu-ab: ETCD=1 needs etcd on the PATH (Debian: etcd-server)" >&2
  exit 1
fi

PIDS=()
stop_all() {
  [ ${#PIDS[@]} -eq 0 ] && return
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK_DIR"' EXIT

cpu_ticks() { # the summed utime + stime of PIDS, in clock ticks
  local total=0 pid
  for pid in "${PIDS[@]}"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# measure NAME TARGET ENDPOINTS SYNC_COMMAND LOAD: prints one line for the run.
measure() {
  local name=$1 target=$2 endpoints=$3 syncs=$4 load=$5
  if [ "$PRELOAD" -gt 0 ]; then
    "$load" --target "$target" --endpoints "$endpoints" -w put -c 64 --ops "$PRELOAD" \
      --keys "$PRELOAD" $( [ "$target" = elastickv ] && echo --leader-routing ) >/dev/null 2>&1
  fi
  "$load" --target "$target" --endpoints "$endpoints" -w put -c "$CLIENTS" --duration 2s \
    $( [ "$target" = elastickv ] && echo --leader-routing ) >/dev/null 2>&1
  local s0 c0 c1 s1 load_ticks
  s0=$($syncs)
  c0=$(cpu_ticks)
  # The generator's CPU time: its shell's children's utime + stime, once it has ended.
  # shellcheck disable=SC2016
  load_ticks=$(bash -c '"$@" >/dev/null 2>&1; awk "{print \$16 + \$17}" /proc/$$/stat' load \
    "$load" --target "$target" --endpoints "$endpoints" -w put -c "$CLIENTS" --duration "${DURATION}s" \
    $( [ "$target" = elastickv ] && echo --leader-routing ) --json "$WORK_DIR/run.json")
  c1=$(cpu_ticks)
  s1=$($syncs)
  python3 - "$WORK_DIR/run.json" "$name" "$CLIENTS" "$DURATION" "$((c1 - c0))" "$(getconf CLK_TCK)" "$s0" "$s1" "$load_ticks" <<'EOF'
import json, sys
path, name, clients, duration, ticks, hz, s0, s1, load_ticks = sys.argv[1:]
report = json.load(open(path))
ops = sum(o["ops"] for o in report["ops"])
errors = sum(o.get("errors_total", 0) for o in report["ops"])
if ops == 0:
    print(f"{name:8s} clients={clients}: no operation succeeded (errors {errors})")
    sys.exit(0)
cpu_ms = int(ticks) / int(hz) * 1000 / ops
syncs = "" if s0 == "-" else f"  log syncs/put {(int(s1) - int(s0)) / ops:.3f}"
load_ms = int(load_ticks) / int(hz) * 1000 / ops
print(f"{name:8s} clients={clients}  puts/s {ops / float(duration):8.0f}  CPU/put {cpu_ms:.3f} ms{syncs}  load generator CPU/put {load_ms:.3f} ms  errors {errors}")
EOF
}

ekv_syncs() {
  local total=0 i n
  for i in 1 2 3; do
    # The node's shared log when its groups use one (one sync serves every group),
    # else the groups' own logs.
    n=$(curl -sf "127.0.0.1:$((BASE_PORT + 10 + i - 1))/metrics" |
      awk '/^elastickv_raft_shared_log_syncs_total/ {shared += $2}
        /^elastickv_raft_log_syncs_total/ {groups += $2}
        END {printf "%d", (shared > 0 ? shared : groups)}')
    total=$((total + n))
  done
  echo "$total"
}
no_syncs() { echo -; }

wait_for() { # WHAT COMMAND...: retries COMMAND for up to 20 s
  local what=$1 tries=0
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { echo "cpu-ab: $what did not come up; see $WORK_DIR" >&2; exit 1; }
    sleep 0.2
  done
}

run_elastickv() { # NAME BINARY FLAGS LOAD
  local name=$1 bin=$2 flags=$3 load=$4 i members="" endpoints=""
  rm -rf "$WORK_DIR/ekv"
  for i in 1 2 3; do
    members+="${members:+,}$i=127.0.0.1:$((BASE_PORT + i - 1))"
    endpoints+="${endpoints:+,}127.0.0.1:$((BASE_PORT + i - 1))"
  done
  for i in 1 2 3; do
    # shellcheck disable=SC2086
    "$bin" node --id "$i" --listen "127.0.0.1:$((BASE_PORT + i - 1))" \
      --data-dir "$WORK_DIR/ekv/n$i" --engine "$ENGINE" --groups "$GROUPS_N" \
      --initial-cluster "$members" --metrics-listen "127.0.0.1:$((BASE_PORT + 10 + i - 1))" \
      --log warn $flags >"$WORK_DIR/$name-node$i.log" 2>&1 &
    PIDS+=($!)
  done
  wait_for "the $name cluster" "$load" --endpoints "$endpoints" -w put -c 1 --ops 10 --leader-routing
  measure "$name" elastickv "$endpoints" ekv_syncs "$load"
  stop_all
}

run_etcd() { # NAME ENV (VAR=value ...)
  local name=$1 env=$2 i cluster="" endpoints=""
  rm -rf "$WORK_DIR/etcd"
  for i in 1 2 3; do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((BASE_PORT + 30 + i - 1))"
    endpoints+="${endpoints:+,}127.0.0.1:$((BASE_PORT + 20 + i - 1))"
  done
  for i in 1 2 3; do
    # shellcheck disable=SC2086
    env $env etcd --name "m$i" --data-dir "$WORK_DIR/etcd/m$i" \
      --listen-client-urls "http://127.0.0.1:$((BASE_PORT + 20 + i - 1))" \
      --advertise-client-urls "http://127.0.0.1:$((BASE_PORT + 20 + i - 1))" \
      --listen-peer-urls "http://127.0.0.1:$((BASE_PORT + 30 + i - 1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((BASE_PORT + 30 + i - 1))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token cpu-ab \
      --logger zap --log-outputs stderr --log-level warn >"$WORK_DIR/etcd-m$i.log" 2>&1 &
    PIDS+=($!)
  done
  wait_for etcd curl -sf "http://127.0.0.1:$((BASE_PORT + 20))/health"
  measure "$name" etcd "$endpoints" no_syncs "$A_LOAD"
  stop_all
}

rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"
echo "cpu-ab: A=$A ${A_FLAGS:+($A_FLAGS) }B=$B ${B_FLAGS:+($B_FLAGS) }engine $ENGINE, $GROUPS_N groups, $CLIENTS clients, ${DURATION}s runs${A_LOAD:+, load generators $A_LOAD and $B_LOAD}"
for _ in $(seq "$ROUNDS"); do
  if [ "$EKV" = 1 ]; then
    run_elastickv A "$A" "$A_FLAGS" "$A_LOAD"
    run_elastickv B "$B" "$B_FLAGS" "$B_LOAD"
  fi
  if [ "$ETCD" = 1 ]; then
    run_etcd etcd ""
    if [ -n "$ETCD_B_ENV" ]; then run_etcd etcd-B "$ETCD_B_ENV"; fi
  fi
done
