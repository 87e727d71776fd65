# Shared by the benchmark scripts (sourced, not run): release build, a work folder cleaned up
# on exit with every process started, helpers, and a mock Kafka broker in its own process.
#   start_broker TOPIC... → sets $brokers (32 partitions per topic)

cargo build --release --quiet --bins
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
peak_rss_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# 32 partitions: the mock broker keeps only the latest few MB of each partition, and every
# 2xx'd event of a run is read back after it.
start_broker() {
  local topics=()
  for topic in "$@"; do topics+=(--topic "$topic"); done
  "$bin/finhook-sim" kafka "${topics[@]}" --partitions 32 > "$work/kafka.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$work/kafka.out" ] && break; sleep 0.1; done
  brokers=$(head -1 "$work/kafka.out")
}
