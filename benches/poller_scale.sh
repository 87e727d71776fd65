#!/usr/bin/env bash
# Poller cost: finhook polling N simulated Oxlin users at the default interval (10 s), against a
# mock Kafka broker in its own process. Prints finhook's CPU (share of one core) and memory, and
# the simulator's CPU (so a busy simulator is visible).
#
#   benches/poller_scale.sh [USERS...]        (default: 1000 10000)
#   MEASURE_SECONDS=60 WARMUP_SECONDS=20 benches/poller_scale.sh 1000
set -euo pipefail
cd "$(dirname "$0")/.."
users_list=("${@:-1000 10000}")
[ $# -eq 0 ] && users_list=(1000 10000)
measure=${MEASURE_SECONDS:-60}
warmup=${WARMUP_SECONDS:-20}
events_per_minute=${EVENTS_PER_MINUTE:-1}

cargo build --release --quiet --bins
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP_WORK:-}" ] && trap "for pid in \${pids[@]}; do kill \$pid 2>/dev/null || true; done; echo work: $work" EXIT

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

"$bin/finhook-sim" kafka > "$work/kafka.out" 2> "$work/kafka.err" &
pids+=($!)
"$bin/finhook-sim" oxlin --listen 127.0.0.1:17070 --events-per-minute "$events_per_minute" --report-every 0 2> "$work/sim.err" &
sim=$!
pids+=($sim)
for _ in $(seq 50); do [ -s "$work/kafka.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/kafka.out")

printf '%-8s %-10s %-12s %-16s %-12s %-12s %-12s\n' users events/s "cpu(%core)" "cpu/1000users" rss_MiB peak_MiB "sim_cpu(%)"
for users in "${users_list[@]}"; do
  "$bin/finhook-sim" users-file --users "$users" --out "$work/users.toml" 2>/dev/null
  cat > "$work/finhook.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
[metrics]
listen = "127.0.0.1:19090"
[log]
level = "warn"
[kafka]
brokers = "$bootstrap"
[pollers.sim]
kind = "oxlin"
environment = "custom"
api_url = "http://127.0.0.1:17070/v2.1"
token_url = "http://127.0.0.1:17070/token"
client_id = "finhook-sim"
client_secret = "sim-secret"
max_concurrent_requests = 256
users_file = "$work/users.toml"
TOML
  "$bin/finhook" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
  finhook=$!
  sleep "$warmup"
  events_before=$(curl -s 127.0.0.1:19090/metrics | awk '/^finhook_events_published_total/ {sum += $2} END {print sum + 0}')
  cpu_before=$(cpu_ticks "$finhook"); sim_before=$(cpu_ticks "$sim")
  sleep "$measure"
  cpu_after=$(cpu_ticks "$finhook"); sim_after=$(cpu_ticks "$sim")
  events_after=$(curl -s 127.0.0.1:19090/metrics | awk '/^finhook_events_published_total/ {sum += $2} END {print sum + 0}')
  rss=$(rss_kib "$finhook"); hwm=$(hwm_kib "$finhook")
  kill -TERM "$finhook"; wait "$finhook" || true
  awk -v u="$users" -v e0="$events_before" -v e1="$events_after" -v c0="$cpu_before" -v c1="$cpu_after" \
      -v s0="$sim_before" -v s1="$sim_after" -v t="$ticks" -v m="$measure" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
    cpu = (c1 - c0) / t / m * 100; sim = (s1 - s0) / t / m * 100
    printf "%-8d %-10.1f %-12.2f %-16.3f %-12.1f %-12.1f %-12.2f\n", u, (e1 - e0) / m, cpu, cpu / u * 1000, rss / 1024, hwm / 1024, sim
  }'
done
