#!/usr/bin/env bash
# Heap allocations per webhook: uprobes on the entry points of finhook's allocator (mimalloc:
# malloc, zeroed and realloc), counted with `perf stat` while `finhook-bench pace` sends a
# fixed number of webhooks of one body. Needs perf and the right to place uprobes (root).
#
#   benches/allocations.sh [BODY] [BINARY]     # BODY: bridge (default), linxo, linxo-110;
#                                              # BINARY (or BENCH_FINHOOK): another build
#   SITES=1 benches/allocations.sh linxo       # also: where they come from (dwarf stacks)
#
# Allocation counts matter beyond their bookkeeping: under load most of mimalloc's time is the
# cache miss on the freed block it hands out (BENCHMARKS.md, third pass). The figures include
# librdkafka's and hyper's allocations made through Rust, not librdkafka's own (C, glibc).
# With SITES=1, perf may drop samples under the stacks' volume: read the sites as shares, the
# counts from `perf stat` (printed first).
set -euo pipefail
cd "$(dirname "$0")/.."
body=${1:-bridge}
rate=1000 seconds=2
source benches/lib.sh
finhook=${2:-${BENCH_FINHOOK:-$bin/finhook}}
command -v perf >/dev/null || { echo "perf is needed (linux-perf)" >&2; exit 1; }

start_broker finhook.events
port=$(free_port); ops=$(free_port)
write_finhook_config "$work/finhook.toml" "$port" "$ops"
"$finhook" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
server=$!; pids+=($server)
wait_ready "$ops"
pace_run finhook "$port" "$server" "$body" "$rate" > /dev/null # warm-up

# One group of our own: perf would name it after the binary, shortened at the first character
# it does not like (`finhook-before` gave no group this script could find).
group=probe_allocations
remove_probes() { perf probe -q -d "$group:*" 2>/dev/null || true; }
remove_probes
trap 'remove_probes; cleanup' EXIT
for function in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
  perf probe -q -x "$finhook" "$group:$function=$function"
done

perf stat -x, -e "$group:*" -p "$server" -o "$work/counts.csv" -- sleep $((seconds + 1)) &
counting=$!
sleep 0.3
pace_run finhook "$port" "$server" "$body" "$rate" > "$work/pace.json"
wait "$counting"
# Per webhook answered 200, and only when every one was: a refused or unsent webhook would
# make the figure too high without a word.
webhooks=$(python3 -c 'import json, sys
figures = json.load(open(sys.argv[1]))["figures"]
statuses = figures["statuses"]
unsent = figures["unsent"]
if unsent or set(statuses) != {"200"}:
    sys.exit(f"not every webhook was answered 200: {statuses}, unsent {unsent}")
print(statuses["200"])' "$work/pace.json")
awk -F, -v n="$webhooks" -v body="$body" '/probe_/ {sub(/.*:/, "", $3); total += $1; parts = parts sprintf(" %s %.2f", $3, $1 / n)}
  END {printf "%s: %.2f allocator calls per webhook (%s)\n", body, total / n, substr(parts, 2)}' "$work/counts.csv"

[ -n "${SITES:-}" ] || exit 0
perf record -q -e "$group:*" --call-graph dwarf,16384 -p "$server" -o "$work/sites.perf" -- sleep $((seconds + 1)) 2>/dev/null &
recording=$!
sleep 0.3
pace_run finhook "$port" "$server" "$body" "$rate" > /dev/null
wait "$recording"
perf script -i "$work/sites.perf" 2>/dev/null | python3 -c '
import collections, re, sys
# The allocator and the standard containers that call it say nothing of why: skip them.
plumbing = re.compile(r"mi_|MiMalloc|__rust_|__rustc::|alloc::alloc::|Global|raw_vec|box_new|Box<T>::new|Box<T>::pin|Arc<T>::new|Arc<\[T\]>|Vec<T,A>::|Vec<T>::|<alloc::vec|<alloc::string|alloc::fmt|SpecFromIter|SpecExtend|to_vec|collect|from_iter|hashbrown|\[unknown\]")
sites = collections.Counter()
for sample in sys.stdin.read().split("\n\n"):
    lines = sample.strip().splitlines()
    frames = [re.sub(r"\+0x[0-9a-f]+$", "", re.sub(r"^\s*[0-9a-f]+ ", "", line).split(" (")[0]) for line in lines[1:]]
    frames = [frame for frame in frames if not plumbing.search(frame)]
    if frames:
        sites[" < ".join(frame[:80] for frame in frames[:2])] += 1
total = sum(sites.values())
print("where (share of sampled calls):")
for site, count in sites.most_common(30):
    print(f"{count / total:6.1%}  {site}")'
