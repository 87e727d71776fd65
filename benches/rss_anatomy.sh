#!/usr/bin/env bash
# Where finhook's memory goes: one finhook alone under wrk on one body at rising connection
# counts, its peak RSS (VmHWM) after each, then its resident memory by mapping (finhook's
# code, the shared libraries, mimalloc's arena, glibc's heaps: librdkafka's allocations).
#
#   benches/rss_anatomy.sh                                   # Linxo body, 16 64 256, 6 s each
#   BODY=bridge CONNECTIONS="256 1024" benches/rss_anatomy.sh
#   BENCH_FINHOOK=/tmp/finhook-before benches/rss_anatomy.sh  # another build
#
# Peak RSS moves by about a megabyte between runs of the same build: run each build a few
# times, interleaved, before comparing (BENCHMARKS.md, twelfth pass).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
body=${BODY:-linxo}
connections=(${CONNECTIONS:-16 64 256})
seconds=${SECONDS_PER_RUN:-6}

source benches/lib.sh
start_broker finhook.events
port=$(free_port); ops=$(free_port)
write_finhook_config "$work/finhook.toml" "$port" "$ops"
"${BENCH_FINHOOK:-$bin/finhook}" serve --config "$work/finhook.toml" 2> "$work/finhook.err" &
finhook=$!; pids+=($finhook)
wait_ready "$ops" || { cat "$work/finhook.err" >&2; exit 1; }
echo "idle: peak RSS $(peak_rss_mib "$finhook") MiB"
for c in "${connections[@]}"; do
  line=$(wrk_run finhook "$port" "$body" "$c" "$seconds")
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("%s connections: %.0f/s, errors %d" % (r["connections"], r["per_second"], r["errors"]))' "$line"
  echo "  peak RSS $(peak_rss_mib "$finhook") MiB, RSS now $(( $(rss_kib "$finhook") / 1024 )) MiB"
done
echo "== resident memory by mapping (KiB; anonymous mappings of 200 KiB or more)"
python3 - "$finhook" <<'PY'
import collections, sys
by_file, anonymous = collections.Counter(), []
current = None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    fields = line.split()
    if "-" in fields[0] and not fields[0].endswith(":"):
        low, high = (int(part, 16) for part in fields[0].split("-"))
        current = {"size": (high - low) // 1024, "name": fields[5] if len(fields) > 5 else "", "rss": 0}
        anonymous.append(current)
    elif fields[0] == "Rss:":
        current["rss"] = int(fields[1])
for mapping in anonymous:
    if mapping["name"] and not mapping["name"].startswith("["):
        by_file[mapping["name"]] += mapping["rss"]
for name, rss in by_file.most_common(6):
    print(f"{rss:8d}  {name}")
# mimalloc reserves one large arena (1 GiB here); glibc's thread heaps are 64 MiB reservations.
for mapping in sorted(anonymous, key=lambda m: -m["rss"]):
    if mapping["name"] in ("", "[heap]") and mapping["rss"] >= 200:
        kind = "mimalloc arena" if mapping["size"] >= 512 * 1024 else "glibc heap" if mapping["name"] == "[heap]" or mapping["size"] <= 65536 else "anonymous"
        print(f"{mapping['rss']:8d}  {kind} (of {mapping['size']} KiB mapped)")
PY
