#!/usr/bin/env bash
# Benchmark (not a test): wall time of the suite against the seed's plain
# shell script (../shared/bench/seed-checks.sh), best of N runs each.
# Usage: ci/bench.sh [N] [isocheck run filters...]   e.g. ci/bench.sh 5 --filter pid. --filter mnt.
# Needs root. Builds in release mode first; prints one line per configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}; shift || true
cargo build --release --quiet
bin=target/release/isocheck
seed=../shared/bench/seed-checks.sh

best() { # best wall time in seconds of N runs of "$@"
  local b="" t s e
  for _ in $(seq "$n"); do
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "bench: run failed: $*" >&2; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc); if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  printf '%.2f' "$b"
}
count() { "$bin" run --jobs "$(nproc)" "$@" --json /tmp/isocheck-bench.json >/dev/null 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open("/tmp/isocheck-bench.json")); e=r["experiments"]; print(sum(x["status"]=="passed" for x in e), len(e))'; }

read -r passed total < <(count "$@")
printf '%-44s %6ss  (%s of %s experiments passed)\n' "isocheck run --jobs $(nproc) $*" "$(best "$bin" run --jobs "$(nproc)" "$@")" "$passed" "$total"
printf '%-44s %6ss\n' "isocheck run --jobs 1 $*" "$(best "$bin" run --jobs 1 "$@")"
if [ -x "$seed" ] || [ -f "$seed" ]; then
  checks=$(bash "$seed" 2>/dev/null | tail -1)
  printf '%-44s %6ss  (%s)\n' "seed-checks.sh (plain shell)" "$(best bash "$seed")" "$checks"
fi
