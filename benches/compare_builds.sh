#!/usr/bin/env bash
# Several finhook builds (or environments) side by side under closed-loop wrk at one connection
# count, interleaved with ceilings (b) and (b+) in every round: answers/s, CPU µs per webhook
# and, at the end, each finhook's peak RSS. For questions bodies.sh (one finhook) and
# fixed_rate.sh (a fixed rate, where batching differs from 256 busy connections) leave open:
# an allocator, a runtime setting, a build option, at the connection count where it matters.
#
#   benches/compare_builds.sh head=/tmp/finhook-head new=target/release/finhook
#   CONNECTIONS=64 ROUNDS=5 BODIES=linxo benches/compare_builds.sh a=/tmp/a b=/tmp/b
#
# An environment variant is a wrapper that execs the binary (the pid, and so the CPU and RSS
# read from /proc, stay the binary's):
#   printf '#!/bin/sh\nMIMALLOC_PURGE_DELAY=0 exec /tmp/finhook-head "$@"\n' > /tmp/purge0
#   chmod +x /tmp/purge0
#
# Prints one line per run: body, server, answers/s, CPU µs per webhook, p99, errors. Every
# server shares the 2 cores with the others (idle ones cost little) and with wrk. The servers
# take turns in a rotating order, so that none always runs right after the same other. A
# build's stderr is printed if it fails to start.
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."
[ $# -ge 1 ] || { sed -n '2,14p' "$script" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
connections=${CONNECTIONS:-256}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-5}
bodies=(${BODIES:-bridge linxo})

source benches/lib.sh
start_broker finhook.events bench.ceiling
declare -A port_of pid_of
port_of[ceiling-kafka]=$(free_port)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:${port_of[ceiling-kafka]}" --brokers "$brokers" &
pid_of[ceiling-kafka]=$!; pids+=($!)
port_of[ceiling-shaped]=$(free_port)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:${port_of[ceiling-shaped]}" --brokers "$brokers" --envelope-shaped &
pid_of[ceiling-shaped]=$!; pids+=($!)
builds=()
for build in "$@"; do
  name=${build%%=*}; binary=$(realpath "${build#*=}")
  [ -x "$binary" ] || { echo "not an executable: ${build#*=}" >&2; exit 1; }
  [ -z "${pid_of[$name]:-}" ] || { echo "a name used twice (ceiling-kafka and ceiling-shaped are taken): $name" >&2; exit 1; }
  port=$(free_port); ops=$(free_port)
  write_finhook_config "$work/$name.toml" "$port" "$ops"
  "$binary" serve --config "$work/$name.toml" 2> "$work/$name.err" &
  pid_of[$name]=$!; port_of[$name]=$port; pids+=($!); builds+=("$name")
  wait_ready "$ops" || { cat "$work/$name.err" >&2; exit 1; }
done
wait_http "http://127.0.0.1:${port_of[ceiling-kafka]}/"
wait_http "http://127.0.0.1:${port_of[ceiling-shaped]}/"

for body in "${bodies[@]}"; do
  targets=(ceiling-kafka ceiling-shaped "${builds[@]}")
  for round in $(seq "$rounds"); do
    # Round r starts at target r - 1 and goes around.
    shift_by=$(( (round - 1) % ${#targets[@]} ))
    for target in "${targets[@]:$shift_by}" "${targets[@]:0:$shift_by}"; do
      pid=${pid_of[$target]}
      before=$(cpu_seconds "$pid")
      line=$(wrk_run "$target" "${port_of[$target]}" "$body" "$connections" "$seconds")
      after=$(cpu_seconds "$pid")
      python3 -c '
import json, sys
run = json.loads(sys.argv[1])
us = (float(sys.argv[3]) - float(sys.argv[2])) / max(run["answered"], 1) * 1e6
print("%-8s round %s  %-16s %7.0f/s  %5.1f µs/webhook  p99 %5.2f ms  errors %d" % (
    run["body"], sys.argv[4], run["target"], run["per_second"], us, run["p99_ms"], run["errors"]))' \
        "$line" "$before" "$after" "$round"
    done
  done
done
for name in "${builds[@]}"; do echo "$name: peak RSS $(peak_rss_mib "${pid_of[$name]}") MiB"; done
