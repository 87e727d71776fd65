#!/usr/bin/env bash
# The webhook path on the providers' real bodies against ceiling (b), "HTTP → Kafka → ack" on the
# raw body, and ceiling (b+), the same with the key, headers and attributes of a real envelope
# around the body (what the record costs, apart from finhook's code), in the same run. Closed
# loop: wrk (one thread, every request the same pre-signed bytes); ceiling (a), HTTP alone,
# shows wrk is not the bottleneck. Open loop: `finhook-bench pace` (one thread, pre-built
# requests, latency from the schedule) at half of finhook's peak (the median over rounds at
# its best connection count), against finhook and ceiling (b) alike, in rounds too.
#
#   benches/bodies.sh                         # 3 rounds of 5 s runs, 16 / 64 / 256 connections
#   SECONDS_PER_RUN=5 ROUNDS=1 CONNECTIONS="64" BODIES="linxo" benches/bodies.sh
#   BENCH_FINHOOK=/tmp/finhook-before benches/bodies.sh   # another finhook build (before/after)
#   REQUIRED_HEADERS=1 benches/bodies.sh      # also finhook with kafka.attribute_headers = "required"
# (Not FINHOOK_*: finhook reads that prefix as its own config and refuses unknown keys.)
#
# Prints one JSON line per run and a summary: answered/s, p50/p99/p99.9, CPU seconds per
# 10,000 webhooks of the server (finhook or ceiling), finhook / ceiling; the open-loop tails,
# late and unsent requests; finhook's peak RSS. After each closed-loop run it checks that
# finhook published at least as many events as it answered 2xx.
#
# Rounds: each round runs every server back to back at each connection count, and the summary
# gives the median over rounds, with finhook / ceiling taken within each round (the runs closest
# in time) and its range. On this 2-core machine one closed-loop ratio moved by up to 30 points
# between runs of the same build; a single run decides nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_RUN:-5}
rounds=${ROUNDS:-3}
[ "$rounds" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 1; }
connections=(${CONNECTIONS:-16 64 256})
bodies=(${BODIES:-bridge linxo linxo-110})
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

source benches/lib.sh
published() { metric_sum "${1:-$ops_port}" finhook_events_published_total; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(rustc --version); $(wrk --version 2>&1 | head -1)"
start_broker finhook.events bench.ceiling

webhook_port=$(free_port); ops_port=$(free_port); http_port=$(free_port); kafka_port=$(free_port)
shaped_port=$(free_port)
write_finhook_config "$work/finhook.toml" "$webhook_port" "$ops_port"
"${BENCH_FINHOOK:-$bin/finhook}" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
finhook=$!; pids+=($finhook)
# finhook with only CloudEvents' required attributes as headers: what each header costs, in
# finhook (the ceiling (b+) keeps every header).
if [ -n "${REQUIRED_HEADERS:-}" ]; then
  required_port=$(free_port); required_ops=$(free_port)
  write_finhook_config "$work/required.toml" "$required_port" "$required_ops"
  FINHOOK_KAFKA__ATTRIBUTE_HEADERS=required "${BENCH_FINHOOK:-$bin/finhook}" serve --config "$work/required.toml" 2> "$work/required.err" &
  finhook_required=$!; pids+=($finhook_required)
  wait_ready "$required_ops"
fi
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

# One wrk run: target name, port, server pid, body name, connections, round → one JSON line.
run() {
  local target=$1 port=$2 pid=$3 body=$4 c=$5 round=${6:-0} before after events_before events_after
  local events_port=$ops_port; [ "$target" = finhook-required ] && events_port=$required_ops
  before=$(cpu_seconds "$pid"); events_before=$(published "$events_port")
  line=$(wrk_run "$target" "$port" "$body" "$c" "$seconds")
  after=$(cpu_seconds "$pid"); events_after=$(published "$events_port")
  python3 -c '
import json, sys
run = json.loads(sys.argv[1]); cpu = float(sys.argv[2]); events = int(float(sys.argv[3]))
run["round"] = int(sys.argv[4])
run["server_cpu_s_per_10k"] = round(cpu / max(run["answered"], 1) * 10000, 3)
if run["target"].startswith("finhook"):
    run["published"] = events
    run["published_covers_2xx"] = events >= run["answered"] - run["errors"]
print(json.dumps(run))' "$line" "$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" "$(awk -v a="$events_after" -v b="$events_before" 'BEGIN {print a - b}')" "$round"
}

for body in "${bodies[@]}"; do
  # Warm-up: connections, producers, topic metadata.
  seconds=2 run finhook "$webhook_port" "$finhook" "$body" 16 > /dev/null
  if [ -n "${REQUIRED_HEADERS:-}" ]; then seconds=2 run finhook-required "$required_port" "$finhook_required" "$body" 16 > /dev/null; fi
  seconds=2 run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" 16 > /dev/null
  seconds=2 run ceiling-shaped "$shaped_port" "$ceiling_shaped" "$body" 16 > /dev/null
  for round in $(seq "$rounds"); do
    for c in "${connections[@]}"; do
      run ceiling-http "$http_port" "$ceiling_http" "$body" "$c" "$round"
      run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" "$c" "$round"
      run ceiling-shaped "$shaped_port" "$ceiling_shaped" "$body" "$c" "$round"
      run finhook "$webhook_port" "$finhook" "$body" "$c" "$round"
      if [ -n "${REQUIRED_HEADERS:-}" ]; then run finhook-required "$required_port" "$finhook_required" "$body" "$c" "$round"; fi
    done
  done
done | tee "$work/closed.jsonl"
echo "finhook peak RSS: $(peak_rss_mib "$finhook") MiB"

echo "== open loop at half of finhook's closed-loop peak (the best connection count's median), per body, finhook and ceiling (b) at the same rate (finhook-bench pace)"
for body in "${bodies[@]}"; do
  peak=$(python3 -c '
import json, statistics, sys
runs = [r for r in map(json.loads, open(sys.argv[1])) if r["target"] == "finhook" and r["body"] == sys.argv[2]]
print(max(statistics.median(r["per_second"] for r in runs if r["connections"] == c) for c in {r["connections"] for r in runs}))' "$work/closed.jsonl" "$body")
  rate=$(python3 -c "print(round($peak / 2))")
  for round in $(seq "$rounds"); do
    pace_run ceiling-kafka "$kafka_port" "$ceiling_kafka" "$body" "$rate"
    pace_run finhook "$webhook_port" "$finhook" "$body" "$rate"
  done
done | tee "$work/open.jsonl"
echo "finhook peak RSS after the open loop: $(peak_rss_mib "$finhook") MiB"

echo "== summary (median of $rounds rounds; finhook / ceiling is taken within each round, its range in brackets)"
python3 - "$work/closed.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict
runs = [json.loads(line) for line in open(sys.argv[1])]
by = defaultdict(dict)  # (body, connections) -> {(target, round): run}
for r in runs:
    by[(r["body"], int(r["connections"]))][(r["target"], r["round"])] = r
def median(values):
    return statistics.median(values)
def ratio(cell, over, target="finhook"):
    values = [cell[(target, n)]["per_second"] / cell[(over, n)]["per_second"] for (t, n) in cell if t == target]
    return f"{median(values):.0%} [{min(values):.0%}-{max(values):.0%}]"
print(f"{'body':<10} {'conn':>5} {'http/s':>8} {'kafka/s':>8} {'(b+)/s':>8} {'finhook/s':>9} {'of (b)':>16} {'of (b+)':>16} {'p99 k/f ms':>12} {'p99.9 f':>8} {'cpu/10k k/b+/f s':>17} {'2xx⊆kafka':>9}")
for (body, c), cell in sorted(by.items()):
    def med(target, field):
        return median(r[field] for (t, _), r in cell.items() if t == target)
    covered = all(r["published_covers_2xx"] for (t, _), r in cell.items() if t == "finhook")
    print(f"{body:<10} {c:>5} {med('ceiling-http', 'per_second'):>8.0f} {med('ceiling-kafka', 'per_second'):>8.0f} {med('ceiling-shaped', 'per_second'):>8.0f} {med('finhook', 'per_second'):>9.0f} "
          f"{ratio(cell, 'ceiling-kafka'):>16} {ratio(cell, 'ceiling-shaped'):>16} "
          f"{med('ceiling-kafka', 'p99_ms'):>5.2f}/{med('finhook', 'p99_ms'):<6.2f} {med('finhook', 'p999_ms'):>8.2f} "
          f"{med('ceiling-kafka', 'server_cpu_s_per_10k'):>5.2f}/{med('ceiling-shaped', 'server_cpu_s_per_10k'):.2f}/{med('finhook', 'server_cpu_s_per_10k'):<5.2f} {str(covered):>9}")
    if any(t == "finhook-required" for (t, _) in cell):
        print(f"{'':<10} {'':>5} finhook with required headers only: {med('finhook-required', 'per_second'):.0f}/s, "
              f"{ratio(cell, 'ceiling-kafka', 'finhook-required')} of (b), p99 {med('finhook-required', 'p99_ms'):.2f} ms, "
              f"cpu/10k {med('finhook-required', 'server_cpu_s_per_10k'):.2f} s, 2xx⊆kafka "
              f"{all(r['published_covers_2xx'] for (t, _), r in cell.items() if t == 'finhook-required')}")
PY
python3 - "$work/open.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict
print(f"{'open loop':<10} {'rate':>6} {'target':<14} {'p50':>6} {'p90':>6} {'p99':>6} {'p99.9':>7} {'max':>7} {'late':>5} {'unsent':>6} {'non-2xx':>7} {'cpu/10k':>7} {'gen cpu':>7}")
groups = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line); f = r["figures"]; l = f["latency_ms"]
    groups[(r["body"], r["target"])].append(r)
    bad = sum(n for status, n in f["statuses"].items() if not status.startswith("2"))
    print(f"{r['body']:<10} {f['rate']:>6.0f} {r['target']:<14} {l['p50']:>6.2f} {l['p90']:>6.2f} {l['p99']:>6.2f} {l['p999']:>7.2f} {l['max']:>7.2f} {f['late_sends']:>5} {f['unsent']:>6} {bad:>7} {r['server_cpu_s_per_10k']:>7.2f} {f['generator_cpu_seconds']:>7.2f}")
print("median over rounds:")
for (body, target), rs in groups.items():
    tail = lambda key: statistics.median(r["figures"]["latency_ms"][key] for r in rs)
    print(f"{body:<10} {rs[0]['figures']['rate']:>6.0f} {target:<14} p99 {tail('p99'):.2f} ms, p99.9 {tail('p999'):.2f} ms ({len(rs)} rounds)")
PY
