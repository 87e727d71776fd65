#!/usr/bin/env bash
# finhook's benchmarks, in one command (see BENCHMARKS.md):
#   benches/run.sh                  # everything: webhooks, ceilings, resources, poller scale
#   SECONDS_PER_RUN=5 SKIP_POLLER=1 SKIP_BODIES=1 SKIP_FIXED_RATE=1 benches/run.sh   # quicker
#   BENCH_FINHOOK_BEFORE=/tmp/finhook-before benches/run.sh   # fixed-rate CPU before and after
#
# SECONDS_PER_RUN sets run.sh's own runs (default 10 s) and, when given, fixed_rate.sh's
# (default 5 s there); CONCURRENCIES run.sh's connection counts (default "1 16 64 256").
# bodies.sh runs ROUNDS rounds (default 3) of BODIES_SECONDS (default 5 s) per server and
# connection count; fixed_rate.sh runs ROUNDS rounds too. POLLER_SECONDS: the poller's measure
# (default 30 s). SKIP_BODIES, SKIP_FIXED_RATE, SKIP_POLLER leave a part out.
#
# Builds in release mode, starts a Kafka-protocol broker in its own process (librdkafka's mock
# cluster: `finhook-sim kafka`), finhook, and the ceilings (HTTP alone; Kafka unkeyed and keyed
# as finhook keys), and drives them with
# `finhook-bench load` (closed loop, unique events, every 2xx'd id read back from Kafka) and
# `finhook-bench pace` (open loop, one fixed body). Prints one line per run and a summary;
# figures only, no pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-10}
concurrencies=(${CONCURRENCIES:-1 16 64 256})

source benches/lib.sh
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "rustc: $(rustc --version)"
# 128 partitions: room for every record of a run at the closed-loop peak (over 100,000 at 64
# connections) until it is read back (see lib.sh).
BROKER_PARTITIONS=128 start_broker finhook.events bench.ceiling

webhook_port=$(free_port); ops_port=$(free_port)
write_finhook_config "$work/finhook.toml" "$webhook_port" "$ops_port"
"$bin/finhook" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
finhook=$!
pids+=($finhook)
wait_ready "$ops_port"

load() { "$bin/finhook-bench" load "$@"; }
url="http://127.0.0.1:$webhook_port/webhooks/bridge"
# Warm-up: connections, producer, topic metadata.
load --url "$url" --concurrency 16 --seconds 2 > /dev/null

echo "== finhook, closed loop"
for c in "${concurrencies[@]}"; do
  before=$(cpu_seconds "$finhook")
  line=$(load --url "$url" --concurrency "$c" --seconds "$seconds" --brokers "$brokers")
  after=$(cpu_seconds "$finhook")
  echo "$line" | python3 -c '
import json, sys
cpu = float(sys.argv[1]); run = json.loads(sys.stdin.read()); f = run["figures"]
per10k = cpu / max(f["answered"], 1) * 10000
print(json.dumps({**run, "finhook_cpu_seconds_per_10k": round(per10k, 3)}))' "$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')"
done | tee "$work/closed.jsonl"
echo "finhook peak RSS after the closed-loop runs: $(peak_rss_mib "$finhook") MiB"
echo "== finhook, send → readable in Kafka (a consumer tails the topic during the run)"
load --url "$url" --concurrency 16 --seconds "$seconds" --brokers "$brokers" --tail

peak=$(python3 -c 'import json,sys; print(max(json.loads(l)["figures"]["answered_per_second"] for l in open(sys.argv[1])))' "$work/closed.jsonl")
echo "== finhook, open loop (fixed rates: a quarter, half and three quarters of the closed-loop peak $peak/s)"
# finhook-bench pace, not `load --rate`: a task and a reqwest call per request took a whole core
# at these rates and made the generator's own queueing look like finhook's tail (BENCHMARKS.md).
for fraction in 0.25 0.5 0.75; do
  rate=$(python3 -c "print(round($peak * $fraction))")
  pace_run "finhook-open-$fraction" "$webhook_port" "$finhook" bridge "$rate"
done
echo "finhook peak RSS after the open-loop runs: $(peak_rss_mib "$finhook") MiB"

echo "== ceilings, closed loop"
http_port=$(free_port); kafka_port=$(free_port); keyed_port=$(free_port)
"$bin/finhook-bench" ceiling-http --listen "127.0.0.1:$http_port" &
pids+=($!)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$kafka_port" --brokers "$brokers" &
pids+=($!)
# Ceiling (b), keyed as finhook keys these events (by their 5,000 items): over 128 partitions a
# burst goes out in one-record batches, which costs the producer and the broker far more per
# record than an unkeyed producer filling one batch at a time (BENCHMARKS.md, sixth pass).
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$keyed_port" --brokers "$brokers" --keys 5000 &
pids+=($!)
wait_http "http://127.0.0.1:$http_port/"
wait_http "http://127.0.0.1:$kafka_port/"
wait_http "http://127.0.0.1:$keyed_port/"
for c in "${concurrencies[@]}"; do
  load --url "http://127.0.0.1:$http_port/webhooks/bridge" --concurrency "$c" --seconds "$seconds" --target ceiling-http
done | tee "$work/ceiling-http.jsonl"
load --url "http://127.0.0.1:$kafka_port/webhooks/bridge" --concurrency 16 --seconds 2 --target warmup > /dev/null
for c in "${concurrencies[@]}"; do
  load --url "http://127.0.0.1:$kafka_port/webhooks/bridge" --concurrency "$c" --seconds "$seconds" --target ceiling-kafka
done | tee "$work/ceiling-kafka.jsonl"
load --url "http://127.0.0.1:$keyed_port/webhooks/bridge" --concurrency 16 --seconds 2 --target warmup > /dev/null
for c in "${concurrencies[@]}"; do
  load --url "http://127.0.0.1:$keyed_port/webhooks/bridge" --concurrency "$c" --seconds "$seconds" --target ceiling-kafka-keyed
done | tee "$work/ceiling-keyed.jsonl"

echo "== summary (answered/s and p99 ms by concurrency)"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def runs(name): return {json.loads(l)["figures"]["concurrency"]: json.loads(l)["figures"] for l in open(f"{work}/{name}.jsonl")}
finhook, http, kafka, keyed = runs("closed"), runs("ceiling-http"), runs("ceiling-kafka"), runs("ceiling-keyed")
# Every 2xx'd id read back, or (at the highest rates) accounted for: the mock broker keeps 5 MB
# per partition, and a run's records it dropped before the read-back are counted by their
# offsets. With every answer a 2xx, read back + dropped = accepted means each has its offset.
def stored(f):
    v = f.get("verified") or {}
    only_2xx = all(status.startswith("2") for status in f["statuses"])
    return "yes" if v and v["missing"] <= (v.get("trimmed_by_broker", 0) if only_2xx else 0) else "NO"
print(f"{'conc':>5} {'finhook/s':>10} {'p99':>7} {'http/s':>10} {'kafka/s':>10} {'p99':>7} {'keyed/s':>10} {'finhook/kafka':>14} {'finhook/keyed':>14} {'2xx stored':>10}")
for c in sorted(finhook):
    f, h, k, kk = finhook[c], http[c], kafka[c], keyed[c]
    print(f"{c:>5} {f['answered_per_second']:>10.0f} {f['latency_ms']['p99']:>7.2f} {h['answered_per_second']:>10.0f} {k['answered_per_second']:>10.0f} {k['latency_ms']['p99']:>7.2f} {kk['answered_per_second']:>10.0f} "
          f"{f['answered_per_second'] / k['answered_per_second']:>14.0%} {f['answered_per_second'] / kk['answered_per_second']:>14.0%} {stored(f):>10}")
PY

if [ -z "${SKIP_BODIES:-}" ]; then
  echo "== the providers' real bodies against the ceilings (wrk)"
  # Rounds of shorter runs (ROUNDS, default 3) rather than one long run: see bodies.sh.
  SECONDS_PER_RUN=${BODIES_SECONDS:-5} benches/bodies.sh
fi

if [ -z "${SKIP_FIXED_RATE:-}" ]; then
  echo "== CPU per webhook at a fixed rate, against ceilings (b) and (b+) (and BENCH_FINHOOK_BEFORE)"
  benches/fixed_rate.sh
fi

if [ -z "${SKIP_POLLER:-}" ]; then
  echo "== poller scale (default interval)"
  MEASURE_SECONDS=${POLLER_SECONDS:-30} benches/poller_scale.sh 1000 10000
fi
