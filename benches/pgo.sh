#!/usr/bin/env bash
# A profile-guided (PGO) release build of finhook's binaries: build them instrumented, run the
# benches' own workloads through them (every body through finhook and the ceilings at a fixed
# rate, and the poller over 300 simulated users), merge the profiles, build again with them.
# Prints the folder of the optimized binaries; run any bench on them with BENCH_BIN=<folder>.
#
#   benches/pgo.sh                  # → target/pgo/optimized/x86_64-unknown-linux-gnu/release
#   BENCH_BIN=target/pgo/optimized/x86_64-unknown-linux-gnu/release benches/fixed_rate.sh
#
# Needs llvm-profdata from rustc's own LLVM: `rustup component add llvm-tools`. Two full
# release builds (about 10 minutes each on 2 cores) and about 3 minutes of training.
set -euo pipefail
cd "$(dirname "$0")/.."
pgo=$PWD/target/pgo
# An explicit target, so RUSTFLAGS reach finhook's binaries and not the build scripts and proc
# macros (which would write profiles of their own while building).
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(find "$(rustc --print sysroot)" -name llvm-profdata -type f | head -1)
[ -n "$profdata" ] || { echo "llvm-profdata is needed: rustup component add llvm-tools" >&2; exit 1; }

RUSTFLAGS="-Cprofile-generate=$pgo/profiles" cargo build --release --quiet --bins \
  --target "$host" --target-dir "$pgo/instrumented"
rm -rf "$pgo/profiles"
mkdir -p "$pgo/profiles"
# The training: what the benches measure. An instrumented binary writes its profile when it
# exits normally: finhook, the ceilings and the mock broker do on lib.sh's SIGTERM (the Oxlin
# simulator does not, and needs no profile).
instrumented=$pgo/instrumented/$host/release
BENCH_BIN=$instrumented ROUNDS=1 SECONDS_PER_RUN=4 \
  RATES="bridge=3000 linxo=3000 linxo-110=1000" benches/fixed_rate.sh > /dev/null
# The poller: 30 events per user per minute, so events come within the run (at the default
# 1, a user's first falls due about a minute after its subscription).
BENCH_BIN=$instrumented EVENTS_PER_MINUTE=30 MEASURE_SECONDS=10 WARMUP_SECONDS=10 \
  benches/poller_scale.sh 300 > /dev/null
profiles=$(find "$pgo/profiles" -name '*.profraw' | wc -l)
[ "$profiles" -gt 0 ] || { echo "the training wrote no profile" >&2; exit 1; }
"$profdata" merge -o "$pgo/merged.profdata" "$pgo/profiles"
RUSTFLAGS="-Cprofile-use=$pgo/merged.profdata" cargo build --release --quiet --bins \
  --target "$host" --target-dir "$pgo/optimized"
echo "$pgo/optimized/$host/release ($profiles profiles merged)"
