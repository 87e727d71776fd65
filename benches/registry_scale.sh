#!/usr/bin/env bash
# Registry mode at scale: USERS simulated Oxlin users (default 10,000) in the users registry,
# polled by 3 finhook replicas at the default interval (10 s), against a mock Kafka broker in
# its own process. Prints each replica's CPU per 1,000 users it polls and its memory (RSS, and
# RSS above its own before the import per user it polls: that includes what polling at all
# costs once, the HTTP connection pool and the registry's consumer, so the cost of one more user
# is the slope between two runs, e.g. 3000 and 10000), then SIGKILLs one replica
# and prints how long until the others poll all of its users again (resumed queues are polled at
# once, so "started" is "polled").
#
#   benches/registry_scale.sh [USERS]
#   MEASURE_SECONDS=30 SESSION_TIMEOUT=10s benches/registry_scale.sh 10000
#   BENCH_FINHOOK=/tmp/finhook-before benches/registry_scale.sh   # another build's replicas
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-10000}
measure=${MEASURE_SECONDS:-30}
session=${SESSION_TIMEOUT:-10s}
key=$(printf '%032d' 0 | base64)

source benches/lib.sh
finhook=${BENCH_FINHOOK:-$bin/finhook}   # the replicas' build (another one for before/after)

BROKER_PARTITIONS=24 start_broker finhook.oxlin.users finhook.oxlin.state finhook.events finhook.deadletter
"$bin/finhook-sim" oxlin --listen 127.0.0.1:17070 --events-per-minute 1 --report-every 0 2> "$work/sim.err" &
pids+=($!)

config() { # name, ops port
  cat <<TOML
[server]
listen = "127.0.0.1:$(( $2 - 1000 ))"
[metrics]
listen = "127.0.0.1:$2"
[log]
level = "warn"
[kafka]
brokers = "$brokers"
[registry]
enabled = true
session_timeout = "$session"
key_id = "k1"
key = "$key"
[pollers.sim]
kind = "oxlin"
environment = "custom"
api_url = "http://127.0.0.1:17070/v2.1"
token_url = "http://127.0.0.1:17070/token"
client_id = "$1"
client_secret = "s"
max_concurrent_requests = 256
TOML
}

ports=(19091 19092 19093)
replica_pids=()
for index in 0 1 2; do
  config "replica-$index" "${ports[$index]}" > "$work/replica-$index.toml"
  "$finhook" serve --config "$work/replica-$index.toml" 2> "$work/replica-$index.err" &
  replica_pids+=($!); pids+=($!)
done
for port in "${ports[@]}"; do wait_http "http://127.0.0.1:$port/metrics"; done
idle_rss=(); for pid in "${replica_pids[@]}"; do idle_rss+=("$(rss_kib "$pid")"); done
"$bin/finhook-sim" users-file --users "$users" --out "$work/users.toml" 2>/dev/null
"$bin/finhook" users import "$work/users.toml" --poller sim --config "$work/replica-0.toml" --brokers "$brokers"

polled() { local total=0; for port in "$@"; do total=$(( total + $(metric "$port" 'finhook_poll_users{poller="sim"}') )); done; echo "$total"; }
started=$(now_ms)
until [ "$(polled "${ports[@]}")" -ge "$users" ]; do sleep 0.5; done
echo "all $users users polled $(( ($(now_ms) - started) )) ms after the import (3 replicas)"
sleep 15

before=(); for pid in "${replica_pids[@]}"; do before+=("$(cpu_seconds "$pid")"); done
sleep "$measure"
printf '%-10s %-8s %-12s %-14s %-12s %-14s\n' replica users "cpu(%core)" "cpu/1000users" rss_MiB "KiB/user"
for index in 0 1 2; do
  after=$(cpu_seconds "${replica_pids[$index]}")
  owned=$(metric "${ports[$index]}" 'finhook_poll_users{poller="sim"}')
  rss=$(rss_kib "${replica_pids[$index]}")
  awk -v n="replica-$index" -v u="$owned" -v c0="${before[$index]}" -v c1="$after" -v m="$measure" \
      -v rss="$rss" -v idle="${idle_rss[$index]}" 'BEGIN {
    cpu = (c1 - c0) / m * 100
    printf "%-10s %-8d %-12.2f %-14.3f %-12.1f %-14.2f\n", n, u, cpu, (u > 0 ? cpu / u * 1000 : 0), rss / 1024, (u > 0 ? (rss - idle) / u : 0)
  }'
done

orphans=$(metric "${ports[0]}" 'finhook_poll_users{poller="sim"}')
resumed_before=$(( $(metric "${ports[1]}" 'finhook_registry_handoffs_total{outcome="resumed"}') + $(metric "${ports[2]}" 'finhook_registry_handoffs_total{outcome="resumed"}') ))
killed=$(now_ms)
kill -9 "${replica_pids[0]}"
until [ "$(polled "${ports[1]}" "${ports[2]}")" -ge "$users" ]; do sleep 0.2; done
took=$(( $(now_ms) - killed ))
resumed_after=$(( $(metric "${ports[1]}" 'finhook_registry_handoffs_total{outcome="resumed"}') + $(metric "${ports[2]}" 'finhook_registry_handoffs_total{outcome="resumed"}') ))
echo "SIGKILL of a replica polling $orphans users: all polled again by the other two after $took ms (session timeout $session); queues resumed: $(( resumed_after - resumed_before ))"
