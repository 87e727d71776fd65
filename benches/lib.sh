# Shared by the benchmark scripts (sourced, not run): release build, a work folder cleaned up
# on exit with every process started, helpers, and a mock Kafka broker in its own process.
#   start_broker TOPIC... → sets $brokers ($BROKER_PARTITIONS partitions per topic, default 32)

# BENCH_BIN=<folder>: run that folder's finhook, finhook-bench and finhook-sim (another build,
# e.g. a PGO one: benches/pgo.sh) instead of building target/release. Paths given to the
# benches (BENCH_BIN, BENCH_FINHOOK, ...) are relative to the repository's root.
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(realpath "$BENCH_BIN")
else
  cargo build --release --quiet --bins
  bin=$PWD/target/release
fi
work=$(mktemp -d)
pids=()
# Stops one process this script started: SIGTERM, then SIGKILL if it has not exited within
# 10 s. Waited for, so the next step (a merge of PGO profiles, another run on the same ports)
# never meets a process still exiting.
stop_process() {
  local pid=$1 watchdog
  kill "$pid" 2>/dev/null || return 0
  # The watchdog's sleep goes with it, and holds no pipe (`benches/x.sh | tee` would wait).
  ( sleep 10 & sleeper=$!; trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    wait "$sleeper" && kill -9 "$pid" 2>/dev/null ) > /dev/null 2>&1 &
  watchdog=$!
  wait "$pid" 2>/dev/null || true
  kill "$watchdog" 2>/dev/null || true
}
# Newest first: finhook and the ceilings flush to the broker, which goes last.
cleanup() {
  local index
  for (( index = ${#pids[@]} - 1; index >= 0; index-- )); do stop_process "${pids[$index]}"; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
peak_rss_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# One series of finhook's metrics on ops port PORT (0 when absent): metric PORT 'name{labels}'
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v series="$2" '$1 == series {print $2; found = 1} END {if (!found) print 0}'; }
# Every series of a metric family, summed: metric_sum PORT NAME
metric_sum() { curl -s "127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 {sum += $2} END {print sum + 0}'; }
now_ms() { date +%s%3N; }
wait_ready() { for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0; sleep 0.1; done; echo "finhook on ops port $1 never got ready" >&2; return 1; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# The mock broker keeps only the latest 5 MB of each partition (librdkafka's rdkafka_mock.c):
# about 2,600 envelopes of the bench's Bridge body, 83,000 over 32 partitions. A run that
# writes more has its first records dropped before `finhook-bench load` reads them back; it
# counts them (`trimmed_by_broker`). run.sh, whose runs are read back, asks for 128 partitions:
# ceiling (b) under `load` at 64 connections answered 21.3k and 17.8k/s at 32 partitions,
# 18.8k and 19.3k/s at 128 (alternating runs), so the count does not move unkeyed figures.
# Keyed records are another matter: spread over many partitions, a burst goes out in
# one-record batches (BENCHMARKS.md, sixth pass).
start_broker() {
  local topics=()
  for topic in "$@"; do topics+=(--topic "$topic"); done
  "$bin/finhook-sim" kafka "${topics[@]}" --partitions "${BROKER_PARTITIONS:-32}" > "$work/kafka.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$work/kafka.out" ] && break; sleep 0.1; done
  brokers=$(head -1 "$work/kafka.out")
  [ -n "$brokers" ] || { echo "the mock broker did not start (see finhook-sim kafka)" >&2; return 1; }
}

# finhook's configuration for the webhook benches: a Bridge source and a Linxo source (HTTP
# Basic), webhooks on PORT, metrics on OPS_PORT, the broker in $brokers.
#   write_finhook_config FILE PORT OPS_PORT
write_finhook_config() {
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$2"
max_in_flight = 4096
[metrics]
listen = "127.0.0.1:$3"
[log]
level = "warn"
[kafka]
brokers = "$brokers"
[sources.bridge]
kind = "bridge"
secret = "bench-secret"
[sources.linxo]
kind = "linxo"
auth = "basic"
username = "linxo"
secret = "bench-password"
TOML
}

# The bench bodies: the Bridge and Linxo fixtures, and a 25 KB Linxo body with 110 accounts.
linxo_auth="Basic $(printf 'linxo:bench-password' | base64)"
body_file() { case $1 in
  bridge) echo tests/fixtures/bridge/item-refreshed.json ;;
  linxo) echo tests/fixtures/linxo/connection-updated-2-accounts.json ;;
  linxo-110) echo benches/bodies/linxo-110-accounts.json ;;
esac; }
source_of() { case $1 in bridge) echo bridge ;; *) echo linxo ;; esac; }

# One open-loop run of `finhook-bench pace` → one JSON line, with the server's CPU per 10k.
#   pace_run TARGET PORT SERVER_PID BODY RATE   (uses $bin, $linxo_auth, $seconds, $PACE_CONNECTIONS)
pace_run() {
  local target=$1 port=$2 pid=$3 body=$4 rate=$5 file before after line
  file=$(body_file "$body")
  before=$(cpu_seconds "$pid")
  line=$("$bin/finhook-bench" pace --url "http://127.0.0.1:$port/webhooks/$(source_of "$body")" \
    --body-file "$file" --header "BridgeApi-Signature: $("$bin/finhook" sign --secret bench-secret "$file")" \
    --header "Authorization: $linxo_auth" --rate "$rate" --connections "${PACE_CONNECTIONS:-128}" \
    --seconds "$seconds" --target "$target")
  after=$(cpu_seconds "$pid")
  python3 -c '
import json, sys
run = json.loads(sys.argv[1]); cpu = float(sys.argv[2])
run["body"] = sys.argv[3]
run["server_cpu_s_per_10k"] = round(cpu / max(run["figures"]["answered"], 1) * 10000, 3)
print(json.dumps(run))' "$line" "$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" "$body"
}

# One closed-loop wrk run (one thread, light enough not to be the bottleneck) → post.lua's JSON
# line: the body signed once for Bridge, HTTP Basic for Linxo; every request the same bytes.
#   wrk_run TARGET PORT BODY CONNECTIONS SECONDS
wrk_run() {
  local target=$1 port=$2 body=$3 connections=$4 seconds=$5 file
  file=$(body_file "$body")
  BODY="$file" BODY_NAME="$body" TARGET="$target" CONNECTIONS="$connections" \
    SIGNATURE="$("$bin/finhook" sign --secret bench-secret "$file")" AUTHORIZATION="$linxo_auth" \
    wrk -t1 -c"$connections" -d"${seconds}s" --timeout 10s -s benches/post.lua \
    "http://127.0.0.1:$port/webhooks/$(source_of "$body")" | tail -1
}
