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

source benches/lib.sh
[ -n "${KEEP_WORK:-}" ] && trap "for pid in \${pids[@]}; do kill \$pid 2>/dev/null || true; done; echo work: $work" EXIT

start_broker
"$bin/finhook-sim" oxlin --listen 127.0.0.1:17070 --events-per-minute "$events_per_minute" --report-every 0 2> "$work/sim.err" &
sim=$!
pids+=($sim)

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
brokers = "$brokers"
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
  pids+=($finhook)
  sleep "$warmup"
  events_before=$(metric_sum 19090 finhook_events_published_total)
  cpu_before=$(cpu_seconds "$finhook"); sim_before=$(cpu_seconds "$sim")
  sleep "$measure"
  cpu_after=$(cpu_seconds "$finhook"); sim_after=$(cpu_seconds "$sim")
  events_after=$(metric_sum 19090 finhook_events_published_total)
  rss=$(rss_kib "$finhook"); hwm=$(peak_rss_mib "$finhook")
  stop_process "$finhook"
  unset 'pids[-1]'
  awk -v u="$users" -v e0="$events_before" -v e1="$events_after" -v c0="$cpu_before" -v c1="$cpu_after" \
      -v s0="$sim_before" -v s1="$sim_after" -v m="$measure" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
    cpu = (c1 - c0) / m * 100; sim = (s1 - s0) / m * 100
    printf "%-8d %-10.1f %-12.2f %-16.3f %-12.1f %-12.1f %-12.2f\n", u, (e1 - e0) / m, cpu, cpu / u * 1000, rss / 1024, hwm, sim
  }'
done
