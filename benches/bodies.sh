#!/usr/bin/env bash
# The webhook path on the providers' real bodies against ceiling (b), "HTTP → Kafka → ack" on the
# raw body, and ceiling (b+), the same with the key, headers and attributes of a real envelope
# around the body (what the record costs, apart from finhook's code), in the same run. Closed loop: wrk (one thread, every request the same pre-signed
# bytes); ceiling (a), HTTP alone, shows wrk is not the bottleneck. Open loop: `finhook-bench
# pace` (one thread, pre-built requests, latency from the schedule) at half of finhook's peak,
# against finhook and ceiling (b) alike.
#
#   benches/bodies.sh                         # 10 s per run, 16 / 64 / 256 connections
#   SECONDS_PER_RUN=5 CONNECTIONS="64" BODIES="linxo" benches/bodies.sh
#   BENCH_FINHOOK=/tmp/finhook-before benches/bodies.sh   # another finhook build (before/after)
# (Not FINHOOK_*: finhook reads that prefix as its own config and refuses unknown keys.)
#
# Prints one JSON line per run and a summary: answered/s, p50/p99/p99.9, CPU seconds per
# 10,000 webhooks of the server (finhook or ceiling), finhook / ceiling; the open-loop tails,
# late and unsent requests; finhook's peak RSS. After each closed-loop run it checks that
# finhook published at least as many events as it answered 2xx.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-10}
connections=(${CONNECTIONS:-16 64 256})
bodies=(${BODIES:-bridge linxo linxo-110})
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

source benches/lib.sh
published() { curl -s "127.0.0.1:$ops_port/metrics" | awk '/^finhook_events_published_total/ {sum += $2} END {print sum + 0}'; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(rustc --version); $(wrk --version 2>&1 | head -1)"
start_broker finhook.events bench.ceiling

webhook_port=$(free_port); ops_port=$(free_port); http_port=$(free_port); kafka_port=$(free_port)
shaped_port=$(free_port)
write_finhook_config "$work/finhook.toml" "$webhook_port" "$ops_port"
"${BENCH_FINHOOK:-$bin/finhook}" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
finhook=$!; pids+=($finhook)
"$bin/finhook-bench" ceiling-http --listen "127.0.0.1:$http_port" &
ceiling_http=$!; pids+=($ceiling_http)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$kafka_port" --brokers "$brokers" &
ceiling_kafka=$!; pids+=($ceiling_kafka)
"$bin/finhook-bench" ceiling-kafka --listen "127.0.0.1:$shaped_port" --brokers "$brokers" --envelope-shaped &
ceiling_shaped=$!; pids+=($ceiling_shaped)
wait_http "http://127.0.0.1:$http_port/"
wait_http "http://127.0.0.1:$kafka_port/"
wait_http "http://127.0.0.1:$shaped_port/"
wait_ready "$ops_port"

# One wrk run: target name, port, server pid, body name, connections → one JSON line.
run() {
  local target=$1 port=$2 pid=$3 body=$4 c=$5 file before after events_before events_after
  file=$(body_file "$body")
  before=$(cpu_seconds "$pid"); events_before=$(published)
  line=$(BODY="$file" BODY_NAME="$body" TARGET="$target" CONNECTIONS="$c" \
    SIGNATURE="$("$bin/finhook" sign --secret bench-secret "$file")" AUTHORIZATION="$linxo_auth" \
    wrk -t1 -c"$c" -d"${seconds}s" --timeout 10s -s benches/post.lua \
    "http://127.0.0.1:$port/webhooks/$(source_of "$body")" | tail -1)
  after=$(cpu_seconds "$pid"); events_after=$(published)
  python3 -c '
import json, sys
run = json.loads(sys.argv[1]); cpu = float(sys.argv[2]); events = int(float(sys.argv[3]))
run["server_cpu_s_per_10k"] = round(cpu / max(run["answered"], 1) * 10000, 3)
if run["target"] == "finhook":
    run["published"] = events
    run["published_covers_2xx"] = events >= run["answered"] - run["errors"]
print(json.dumps(run))' "$line" "$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" "$(awk -v a="$events_after" -v b="$events_before" 'BEGIN {print a - b}')"
}

for body in "${bodies[@]}"; do
  # Warm-up: connections, producers, topic metadata.
  seconds=2 run finhook "$webhook_port" "$finhook" "$body" 16 > /dev/null
  seconds=2 run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" 16 > /dev/null
  seconds=2 run ceiling-shaped "$shaped_port" "$ceiling_shaped" "$body" 16 > /dev/null
  for c in "${connections[@]}"; do
    run ceiling-http "$http_port" "$ceiling_http" "$body" "$c"
    run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" "$c"
    run ceiling-shaped "$shaped_port" "$ceiling_shaped" "$body" "$c"
    run finhook "$webhook_port" "$finhook" "$body" "$c"
  done
done | tee "$work/closed.jsonl"
echo "finhook peak RSS: $(peak_rss_mib "$finhook") MiB"

echo "== open loop at half of finhook's closed-loop peak, per body, finhook and ceiling (b) at the same rate (finhook-bench pace)"
for body in "${bodies[@]}"; do
  peak=$(python3 -c 'import json,sys; print(max(r["per_second"] for r in map(json.loads, open(sys.argv[1])) if r["target"] == "finhook" and r["body"] == sys.argv[2]))' "$work/closed.jsonl" "$body")
  rate=$(python3 -c "print(round($peak / 2))")
  pace_run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" "$rate"
  pace_run finhook "$webhook_port" "$finhook" "$body" "$rate"
done | tee "$work/open.jsonl"
echo "finhook peak RSS after the open loop: $(peak_rss_mib "$finhook") MiB"

echo "== summary"
python3 - "$work/closed.jsonl" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["target"], r["body"], r["connections"]): r for r in runs}
print(f"{'body':<10} {'conn':>5} {'http/s':>8} {'kafka/s':>8} {'(b+)/s':>8} {'finhook/s':>9} {'ratio':>6} {'vs (b+)':>7} {'p99 k/f ms':>12} {'p99.9 f':>8} {'cpu/10k k/b+/f s':>17} {'2xx⊆kafka':>9}")
for (target, body, c), f in sorted(by.items(), key=lambda item: (item[0][1], int(item[0][2]))):
    if target != "finhook":
        continue
    h, k, s = by[("ceiling-http", body, c)], by[("ceiling-kafka", body, c)], by[("ceiling-shaped", body, c)]
    print(f"{body:<10} {c:>5} {h['per_second']:>8.0f} {k['per_second']:>8.0f} {s['per_second']:>8.0f} {f['per_second']:>9.0f} {f['per_second'] / k['per_second']:>6.0%} {f['per_second'] / s['per_second']:>7.0%} "
          f"{k['p99_ms']:>5.2f}/{f['p99_ms']:<6.2f} {f['p999_ms']:>8.2f} {k['server_cpu_s_per_10k']:>5.2f}/{s['server_cpu_s_per_10k']:.2f}/{f['server_cpu_s_per_10k']:<5.2f} {str(f['published_covers_2xx']):>9}")
PY
python3 - "$work/open.jsonl" <<'PY'
import json, sys
print(f"{'open loop':<10} {'rate':>6} {'target':<14} {'p50':>6} {'p90':>6} {'p99':>6} {'p99.9':>7} {'max':>7} {'late':>5} {'unsent':>6} {'non-2xx':>7} {'cpu/10k':>7} {'gen cpu':>7}")
for line in open(sys.argv[1]):
    r = json.loads(line); f = r["figures"]; l = f["latency_ms"]
    bad = sum(n for status, n in f["statuses"].items() if not status.startswith("2"))
    print(f"{r['body']:<10} {f['rate']:>6.0f} {r['target']:<14} {l['p50']:>6.2f} {l['p90']:>6.2f} {l['p99']:>6.2f} {l['p999']:>7.2f} {l['max']:>7.2f} {f['late_sends']:>5} {f['unsent']:>6} {bad:>7} {r['server_cpu_s_per_10k']:>7.2f} {f['generator_cpu_seconds']:>7.2f}")
PY
