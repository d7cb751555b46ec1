#!/usr/bin/env bash
# Runs the suite on several kernels in qemu (one after the other: each guest
# already uses every core) and prints one table, experiments as rows and
# kernels as columns, then `isocheck diff` of each kernel against the baseline.
#
# Usage: ci/kernel-matrix.sh [--baseline VERSION|LABEL] [--outdir DIR] [kernel-run options]
#          (VERSION | --vmlinuz [LABEL=]PATH)...
#   e.g. ci/kernel-matrix.sh 5.10 6.1 6.12          (baseline: the first version)
#        ci/kernel-matrix.sh --baseline 6.12 --cgroup v1 5.10 6.1 6.12
#        ci/kernel-matrix.sh 6.1 --vmlinuz mine=../build/vmlinux
#   --vmlinuz: a kernel of your own (ci/kernel-build.sh's) as a column beside
#   Debian's, in the order given; LABEL defaults to the name of PATH's
#   directory. Its .config is found as kernel-run.sh --vmlinuz finds it.
# Exit status: 0 when every kernel passed, 1 when one failed or broke, 2 when
# a kernel has no column (unknown version: kernel-run's message says why).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

baseline="" outdir="$ROOT/target/kernel/matrix" pass=() versions=()
declare -A vpath=()
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline="${2:?}"; shift 2 ;;
    --outdir) outdir="${2:?}"; shift 2 ;;
    --cgroup|--flavour|--filter|--timeout|--accel|--jobs|--smp|--mem|--isocheck) pass+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --release) pass+=("$1"); shift ;;
    --vmlinuz)
      spec="${2:?--vmlinuz needs [LABEL=]PATH}"; shift 2
      label="${spec%%=*}" path="${spec#*=}"
      [ "$label" != "$spec" ] || label=$(basename "$(dirname "$(realpath -m "$spec")")")
      [[ "$label" =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "kernel-matrix: label '$label' is not a plain name (give LABEL=PATH)" >&2; exit 2; }
      [ -z "${vpath[$label]:-}" ] || { echo "kernel-matrix: two --vmlinuz columns named $label (give LABEL=PATH)" >&2; exit 2; }
      vpath[$label]="$path"; versions+=("$label") ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "kernel-matrix: unknown option $1" >&2; exit 2 ;;
    *) versions+=("$1"); shift ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || { echo "kernel-matrix: give kernel versions, e.g. 5.10 6.1 6.12" >&2; exit 2; }
[ -n "$baseline" ] || baseline="${versions[0]}"
mkdir -p "$outdir"

rc=0 reports=() timings=() n=0
for v in "${versions[@]}"; do
  n=$((n + 1))
  # Plain lines (CI logs): which kernel, where it is, how far the matrix is.
  echo "[$n/${#versions[@]}] kernel $v: fetch/boot/suite (log $outdir/$v.log)" >&2
  start=$(date +%s.%N)
  krc=0
  which=(--kernel "$v")
  [ -z "${vpath[$v]:-}" ] || which=(--vmlinuz "${vpath[$v]}")
  "$HERE/kernel-run.sh" "${which[@]}" --out "$outdir/$v.json" "${pass[@]}" >"$outdir/$v.log" 2>&1 || krc=$?
  end=$(date +%s.%N)
  [ "$krc" = 0 ] || rc=1
  grep -E '^kernel |BROKEN' "$outdir/$v.log" >&2 || tail -5 "$outdir/$v.log" >&2
  temp=cached; grep -q 'kernel-run: fetching' "$outdir/$v.log" && temp=cold
  timings+=("$v: $(python3 "$HERE/kernel/timing.py" "$outdir/$v.json" "$start" "$end" "$temp")")
  if [ -f "$outdir/$v.json" ] && [ "$krc" != 2 ]; then
    reports+=("$v=$outdir/$v.json")
  else
    # A column the matrix cannot show is said, not dropped.
    echo "[$n/${#versions[@]}] kernel $v: NO COLUMN (kernel-run exit $krc): $(grep 'kernel-run:' "$outdir/$v.log" | tail -1)" >&2
    rm -f "$outdir/$v.json"
    rc=2
  fi
done

bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/isocheck"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/isocheck"
for ((i = 0; i < ${#pass[@]}; i++)); do
  [ "${pass[$i]}" = --isocheck ] && bin="${pass[$((i + 1))]}"
done
echo
"$bin" matrix "${reports[@]}"
echo
echo "timings (wall on this host; cold = kernel fetched and unpacked in this run):"
printf '  %s\n' "${timings[@]}"

if [ -f "$outdir/$baseline.json" ]; then
  for v in "${versions[@]}"; do
    [ "$v" = "$baseline" ] || [ ! -f "$outdir/$v.json" ] && continue
    echo
    echo "=== isocheck diff $baseline -> $v ==="
    "$bin" diff "$outdir/$baseline.json" "$outdir/$v.json" || true
  done
fi
exit $rc
