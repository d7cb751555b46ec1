#!/usr/bin/env bash
# Builds a kernel from a source tree with the options isocheck's rows need,
# everything built in, for `ci/kernel-run.sh --vmlinuz`.
#
# Usage: ci/kernel-build.sh SRC [--out DIR] [--base tinyconfig|defconfig]
#          [--fragment FILE]... [--jobs N] [--strict] [--config-only]
#
#   SRC              a kernel source tree (a git checkout or an unpacked
#                    linux-source tarball); it is built out of tree (make O=)
#   --out DIR        the build directory (default target/kernel/build-<tree>);
#                    it then holds vmlinux, arch/x86/boot/bzImage and .config
#   --base B         the starting config: tinyconfig (default: the fewest
#                    objects, minutes on two cores) or defconfig
#   --fragment FILE  merged after ci/kernel/isocheck.config; later wins, so
#                    `# CONFIG_USER_NS is not set` in FILE drops user namespaces
#   --jobs N         make -j (default: the number of CPUs)
#   --strict         exit 1 when an option the fragments want is not in the
#                    final .config (by default: named on stderr, build goes on)
#   --config-only    stop after writing and checking DIR/.config
#
# The build runs under `nice -n 19`. The last stdout line is the vmlinux path.
# Exit status: 0 built; 1 the build failed (or --strict and options missing);
# 2 bad usage or SRC is not a kernel tree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { echo "kernel-build: $*" >&2; }
die() { echo "kernel-build: $*" >&2; exit 2; }

src="" out="" base=tinyconfig jobs="$(nproc)" strict="" config_only="" frags=("$HERE/kernel/isocheck.config")
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --base) base="${2:?--base needs tinyconfig or defconfig}"; shift 2 ;;
    --fragment) frags+=("$(realpath "${2:?--fragment needs a file}")"); shift 2 ;;
    --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
    --strict) strict=1; shift ;;
    --config-only) config_only=1; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
    *) [ -z "$src" ] || die "one SRC only (got $src and $1)"; src="$1"; shift ;;
  esac
done
[ -n "$src" ] || die "give the kernel source tree: ci/kernel-build.sh SRC (try --help)"
[ -d "$src" ] || die "$src: no such directory"
src="$(cd "$src" && pwd)"
# A kernel tree: its top Makefile names VERSION and it has the merge script
# this build relies on (every tree since 3.x).
if ! grep -q '^VERSION = ' "$src/Makefile" 2>/dev/null || [ ! -f "$src/scripts/kconfig/merge_config.sh" ] \
   || [ ! -f "$src/arch/x86/Kconfig" ]; then
  die "$src is not a kernel source tree (no top Makefile with VERSION, scripts/kconfig/merge_config.sh or arch/x86)"
fi
case "$base" in tinyconfig|defconfig) ;; *) die "--base is tinyconfig or defconfig" ;; esac
[[ "$jobs" =~ ^[0-9]+$ ]] || die "--jobs is a number"
for f in "${frags[@]}"; do [ -f "$f" ] || die "no such fragment: $f"; done
for t in make gcc flex bison bc; do
  command -v "$t" >/dev/null || die "$t missing: apt-get install build-essential flex bison bc libelf-dev libssl-dev"
done
[ -n "$out" ] || out="$ROOT/target/kernel/build-$(basename "$src")"
mkdir -p "$out"; out="$(cd "$out" && pwd)"
# Out-of-tree builds refuse a tree that was configured in place.
[ ! -f "$src/.config" ] || die "$src has a .config of its own: run 'make mrproper' there (builds go to --out)"

kmake() { nice -n 19 make -s -C "$src" O="$out" ARCH=x86_64 "$@"; }
t0=$(date +%s)
log "$src → $out: $base + ${frags[*]##*/}"
kmake "$base" >/dev/null
(cd "$src" && nice -n 19 sh scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" "${frags[@]}" >/dev/null)
kmake olddefconfig >/dev/null

# What the fragments ask for against what Kconfig kept: an option the tree
# does not know, or whose dependencies are unmet, vanishes silently in
# merge_config -m + olddefconfig; name each one.
want=$(cat "${frags[@]}" | sed -nE 's/^(CONFIG_[A-Za-z0-9_]+)=(.*)$/\1 \2/p; s/^# (CONFIG_[A-Za-z0-9_]+) is not set$/\1 n/p' \
  | awk '{v[$1]=$2; if (!($1 in o)) {o[$1]=++n; k[n]=$1}} END {for (i=1;i<=n;i++) print k[i], v[k[i]]}')
missing=0
while read -r opt val; do
  got=$(sed -nE "s/^${opt}=(.*)$/\1/p; s/^# ${opt} is not set$/n/p" "$out/.config")
  [ -n "$got" ] || got=n
  [ "$got" = "$val" ] && continue
  missing=$((missing + 1))
  if ! grep -rqsE "^(menu)?config ${opt#CONFIG_}\$" --include='Kconfig*' "$src"; then
    log "$opt: unknown to this tree's Kconfig (wanted $val)"
  else
    log "$opt: wanted $val, the final .config has $got (a dependency is unmet: see 'make O=$out menuconfig', search ${opt#CONFIG_})"
  fi
done <<< "$want"
[ "$missing" = 0 ] || log "$missing option(s) of the fragments are not in the final .config"
[ "$missing" = 0 ] || [ -z "$strict" ] || { log "--strict: stopping"; exit 1; }
[ -z "$config_only" ] || { log "config written: $out/.config"; exit 0; }

t1=$(date +%s)
log "building with -j$jobs (nice 19)"
kmake -j "$jobs" bzImage || { log "the build failed"; exit 1; }
t2=$(date +%s)
ver=$(kmake -s kernelrelease 2>/dev/null || echo '?')
log "built $ver in $((t2 - t0)) s (config $((t1 - t0)) s, compile $((t2 - t1)) s): $out/arch/x86/boot/bzImage"
log "boot it: ci/kernel-run.sh --vmlinuz $out/vmlinux --filter ..."
echo "$out/vmlinux"
