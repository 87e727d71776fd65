#!/usr/bin/env bash
# CPU per webhook at a fixed rate: finhook against ceiling (b), "HTTP → Kafka → ack" on the raw
# body, against ceiling (b+), the same with the key, headers and attributes of a real envelope
# around the body (what the record costs, apart from finhook's code), and optionally against
# another finhook build, in interleaved rounds of `finhook-bench
# pace` (open loop). At a fixed rate every server does the same work per second, so the CPU per
# webhook is the steadiest comparison this 2-core machine gives: closed-loop ratios move by up
# to 30 points between runs of the same code, these by ±5–10 %.
#
#   benches/fixed_rate.sh                                        # 3 rounds, 5 s per run
#   BENCH_FINHOOK_BEFORE=/tmp/finhook-before benches/fixed_rate.sh   # before/after
#   RATES="linxo=8000" ROUNDS=4 SECONDS_PER_RUN=5 benches/fixed_rate.sh
#   REQUIRED_HEADERS=1 benches/fixed_rate.sh      # also finhook with kafka.attribute_headers = "required"
#
# Prints one line per run and, per body and server, the mean CPU µs per webhook, its spread
# and the open-loop p99.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-5}
rounds=${ROUNDS:-3}
rates=(${RATES:-bridge=8000 linxo=8000 linxo-110=3000})

source benches/lib.sh
start_broker finhook.events bench.ceiling
kafka_port=$(free_port)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$kafka_port" --brokers "$brokers" &
ceiling=$!; pids+=($ceiling)
shaped_port=$(free_port)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$shaped_port" --brokers "$brokers" --envelope-shaped &
shaped=$!; pids+=($shaped)
# Each finhook build: "name=binary" → its port and pid.
builds=("finhook=$bin/finhook")
[ -n "${BENCH_FINHOOK_BEFORE:-}" ] && builds+=("before=$BENCH_FINHOOK_BEFORE")
[ -n "${REQUIRED_HEADERS:-}" ] && builds+=("finhook-required=$bin/finhook")
declare -A port_of pid_of
for build in "${builds[@]}"; do
  name=${build%%=*}; binary=${build#*=}
  port=$(free_port); ops=$(free_port)
  write_finhook_config "$work/$name.toml" "$port" "$ops"
  # Only the required-headers server gets the setting: an older build (BENCH_FINHOOK_BEFORE)
  # refuses a key it does not know.
  if [ "$name" = finhook-required ]; then
    FINHOOK_KAFKA__ATTRIBUTE_HEADERS=required "$binary" serve --config "$work/$name.toml" 2> "$work/$name.err" &
  else
    "$binary" serve --config "$work/$name.toml" 2> "$work/$name.err" &
  fi
  pid_of[$name]=$!; pids+=($!); port_of[$name]=$port
  wait_ready "$ops"
done
wait_http "http://127.0.0.1:$kafka_port/"
wait_http "http://127.0.0.1:$shaped_port/"

for entry in "${rates[@]}"; do
  body=${entry%%=*}; rate=${entry#*=}
  # Warm-up: connections, producers, topic metadata.
  seconds=2 pace_run ceiling-kafka "$kafka_port" "$ceiling" "$body" "$rate" > /dev/null
  seconds=2 pace_run ceiling-shaped "$shaped_port" "$shaped" "$body" "$rate" > /dev/null
  for build in "${builds[@]}"; do name=${build%%=*}; seconds=2 pace_run "$name" "${port_of[$name]}" "${pid_of[$name]}" "$body" "$rate" > /dev/null; done
  for _ in $(seq "$rounds"); do
    pace_run ceiling-kafka "$kafka_port" "$ceiling" "$body" "$rate"
    pace_run ceiling-shaped "$shaped_port" "$shaped" "$body" "$rate"
    for build in "${builds[@]}"; do name=${build%%=*}; pace_run "$name" "${port_of[$name]}" "${pid_of[$name]}" "$body" "$rate"; done
  done
done | tee "$work/fixed.jsonl"

echo "== CPU µs per webhook at a fixed rate (mean of $rounds rounds, min–max), open-loop p99"
python3 - "$work/fixed.jsonl" <<'PY'
import json, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["body"], r["figures"]["rate"], r["target"])].append(r)
print(f"{'body':<10} {'rate':>6} {'server':<14} {'µs/webhook':>10} {'min–max':>13} {'vs (b)':>7} {'vs (b+)':>7} {'worst p99':>9} {'non-2xx':>7}")
for (body, rate, target), rs in runs.items():
    cpu = [r["server_cpu_s_per_10k"] * 100 for r in rs]
    ceiling = [r["server_cpu_s_per_10k"] * 100 for r in runs[(body, rate, "ceiling-kafka")]]
    shaped = [r["server_cpu_s_per_10k"] * 100 for r in runs[(body, rate, "ceiling-shaped")]]
    mean, base, shaped = sum(cpu) / len(cpu), sum(ceiling) / len(ceiling), sum(shaped) / len(shaped)
    p99 = max(r["figures"]["latency_ms"]["p99"] for r in rs)
    bad = sum(n for r in rs for status, n in r["figures"]["statuses"].items() if not status.startswith("2"))
    print(f"{body:<10} {rate:>6.0f} {target:<14} {mean:>10.1f} {min(cpu):>6.1f}–{max(cpu):<6.1f} {mean / base:>6.2f}× {mean / shaped:>6.2f}× {p99:>9.2f} {bad:>7}")
PY
