#!/usr/bin/env bash
# Runs the isocheck suite on a chosen kernel in qemu and writes that kernel's
# JSON report.
#
# Usage: ci/kernel-run.sh (--kernel VERSION | --vmlinuz PATH [--modules DIR])
#          [--flavour cloud|amd64] [--list] [--out FILE] [--cgroup v2|v1] [--filter PREFIX]... [--jobs N]
#          [--timeout SECONDS] [--accel auto|kvm|tcg] [--release] [--smp N] [--mem MIB]
#          [--isocheck BINARY]  (a prebuilt isocheck instead of `cargo build`)
#          [--exec 'SHELL COMMAND']  (run in the guest before the suite; output on the console)
#          [--userspace host|bookworm|trixie|sid] [--runtime runc|crun]
#          [--config FILE] [--bisect]
#
#   --kernel 6.12     newest Debian kernel of that series (5.10 ... 7.3 from
#                     bullseye, bookworm, trixie, their backports and sid, or
#                     an exact ABI such as 6.1.0-56), fetched with apt-get
#                     download into ${XDG_CACHE_HOME:-$HOME/.cache}/isocheck/kernels;
#                     a series the sources lack exits 2 naming the nearest
#   --flavour cloud   Debian's kernel flavour: cloud (default) or amd64
#   --list            every kernel ABI and flavour the sources offer
#   --vmlinuz PATH    your own kernel (bzImage or vmlinux); --modules is its
#                     /lib/modules/<version> directory; a kernel of
#                     ci/kernel-build.sh needs none (everything built in)
#   --config FILE     the kernel's .config, handed to the guest for the rows'
#                     kconfig needs (default: the package's config-<ver>, or a
#                     .config beside --vmlinuz or up to three levels above)
#   --bisect          exit as `git bisect run` reads it: 0 good (every selected
#                     row passed or was ignored for a reason outside the
#                     kernel), 1 bad (a row failed), 125 cannot tell (no boot,
#                     not a kernel, a row broke, a row not configured); bad
#                     usage or a harness error exits 128, which stops the bisect
#   --cgroup v1       hybrid layout (v1 hierarchies + cgroup2 at unified/) where
#                     the kernel has v1 controllers; default v2 (unified)
#   --out FILE        the guest's report (default target/kernel/<version>.json)
#   --userspace sid   the guest's whole userspace (engine, containerd, runc,
#                     crun, gcc, libseccomp's headers, the tools) from that
#                     Debian release's packages, built with mmdebstrap and
#                     cached like ci/docker-engine.sh --release's roots; the
#                     guest switches into it before the engine starts.
#                     Default host: the host's own files (a bookworm userspace)
#   --runtime crun    the guest engine's default runtime (with --userspace)
#
# Exit status: 0 when the suite passed in the guest, 1 when an experiment
# failed or broke or the guest did (timeout, panic: the report then holds one
# `kernel.boot` row with status broken and the console tail), 2 on bad usage.
# A --vmlinuz that is no kernel image exits 1 before qemu, with no report.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${ISOCHECK_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isocheck/kernels}"

log() { echo "kernel-run: $*" >&2; }
# Under --bisect exit 2 would read as "bad commit": a harness error stops
# the bisect instead (git stops on statuses above 127).
bisect=""
for a in "$@"; do [ "$a" != --bisect ] || bisect=1; done
die() { echo "kernel-run: $*" >&2; exit "$([ -n "$bisect" ] && echo 128 || echo 2)"; }
# no_kernel MSG: this kernel cannot be judged; no report is written.
no_kernel() { echo "kernel-run: $*" >&2; exit "$([ -n "$bisect" ] && echo 125 || echo 1)"; }

kernel="" vmlinuz="" modules="" out="" cgroup=v2 timeout=600 accel=auto flavour=cloud list=""
bin="" profile=debug prebuilt="" guest_exec="" smp=2 mem=1024 jobs="" filters=() kconfig=""
userspace=host runtime=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel="${2:?--kernel needs a version}"; shift 2 ;;
    --flavour) flavour="${2:?--flavour needs cloud or amd64}"; shift 2 ;;
    --list) list=1; shift ;;
    --vmlinuz) vmlinuz="${2:?--vmlinuz needs a path}"; shift 2 ;;
    --modules) modules="${2:?--modules needs a directory}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --cgroup) cgroup="${2:?}"; shift 2 ;;
    --filter) filters+=("${2:?--filter needs a prefix}"); shift 2 ;;
    --jobs) jobs="${2:?}"; shift 2 ;;
    --timeout) timeout="${2:?}"; shift 2 ;;
    --accel) accel="${2:?}"; shift 2 ;;
    --release) profile=release; shift ;;
    --isocheck) prebuilt="${2:?--isocheck needs a binary}"; shift 2 ;;
    --exec) guest_exec="${2:?--exec needs a shell command}"; shift 2 ;;
    --config) kconfig="${2:?--config needs a file}"; shift 2 ;;
    --bisect) shift ;;
    --smp) smp="${2:?}"; shift 2 ;;
    --mem) mem="${2:?}"; shift 2 ;;
    --userspace) userspace="${2:-}"; shift; shift || true ;;
    --runtime) runtime="${2:-}"; shift; shift || true ;;
    -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
case "$flavour" in cloud) flavour=cloud-amd64 ;; amd64|cloud-amd64) ;; *) die "--flavour is cloud or amd64" ;; esac
if [ -n "$list" ]; then
  . "$HERE/kernel/apt.sh"; mkdir -p "$CACHE"; kapt_update
  for f in cloud-amd64 amd64; do kapt_kernels "$f" | sed "s/\$/ ${f%-amd64}/; s/ amd64\$/ amd64/"; done | sort -V
  exit 0
fi
[ -n "$kernel" ] || [ -n "$vmlinuz" ] || die "give --kernel VERSION or --vmlinuz PATH (try --help)"
[ -z "$kernel" ] || [ -z "$vmlinuz" ] || die "--kernel and --vmlinuz exclude each other"
case "$cgroup" in v1|v2) ;; *) die "--cgroup is v1 or v2" ;; esac
case "$accel" in auto|kvm|tcg) ;; *) die "--accel is auto, kvm or tcg" ;; esac
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout is a number of seconds"
# shellcheck source=ci/engine-release.sh
. "$HERE/engine-release.sh"
is_one_of "$userspace" host "${RELEASES[@]}" || die "unknown --userspace '$userspace': valid are $(valid host "${RELEASES[@]}")"
[ -z "$runtime" ] || is_one_of "$runtime" "${RUNTIMES[@]}" || die "unknown --runtime '$runtime': valid are $(valid "${RUNTIMES[@]}")"
[ "$userspace" != host ] || [ -z "$runtime" ] || [ "$runtime" = runc ] ||
  die "--runtime $runtime needs --userspace $(valid "${RELEASES[@]}") (the host's userspace has runc only)"
for t in qemu-system-x86_64 busybox gcc depmod python3 mkfs.ext4; do
  command -v "$t" >/dev/null || die "$t missing: run ci/install-host-deps.sh --qemu"
done

# shellcheck source=ci/kernel/apt.sh
. "$HERE/kernel/apt.sh"
# shellcheck source=ci/kernel/initramfs.sh
. "$HERE/kernel/initramfs.sh"

# fetch_kernel PKG DIR: downloads the image package and, for the packaging
# of 6.19+ (a meta linux-image-*), the linux-binary-*/linux-modules-* that
# hold the kernel and modules; unpacks them into DIR/pkg, extracts vmlinux.
fetch_kernel() {
  local pkg="$1" kdir="$2" p deb vmlinuz mods
  log "fetching $pkg"
  rm -rf "$kdir"; mkdir -p "$kdir/pkg" "$CACHE/debs"
  for p in $(kapt_parts "$pkg"); do
    (cd "$CACHE/debs" && kapt -o APT::Sandbox::User=root download "$p" >/dev/null) || die "apt-get download $p failed"
    deb=$(ls -t "$CACHE/debs/${p}_"*.deb | head -1)
    dpkg-deb -x "$deb" "$kdir/pkg"
    basename "$deb" >> "$kdir/deb"
    rm -f "$deb"  # the unpacked tree is what is reused
  done
  mods=$(ls -d "$kdir"/pkg/lib/modules/* "$kdir"/pkg/usr/lib/modules/* 2>/dev/null | head -1 || true)
  [ -n "$mods" ] || die "$pkg: no lib/modules/<version> in its packages"
  kver=$(basename "$mods")
  vmlinuz=$(ls "$kdir/pkg/boot/vmlinuz-$kver" "$mods/vmlinuz" 2>/dev/null | head -1 || true)
  [ -n "$vmlinuz" ] || die "$pkg: no vmlinuz in /boot or $mods"
  "$HERE/kernel/extract-vmlinux.sh" "$vmlinuz" "$kdir/vmlinux"
  # The package leaves modules.dep to the postinst's depmod.
  depmod -b "${mods%/lib/modules/*}" "$kver"
  echo "$kver" > "$kdir/kver"
  echo "$mods" > "$kdir/moddir"
  touch "$kdir/.complete"
}

t_start=$(date +%s.%N)
mkdir -p "$CACHE"

# --- the kernel: a vmlinux (uncompressed) and its modules directory ---------
if [ -n "$kernel" ]; then
  kapt_update
  pkg=$(kapt_resolve "$kernel" "$flavour")
  if [ -z "$pkg" ]; then
    kapt_update force
    pkg=$(kapt_resolve "$kernel" "$flavour")
  fi
  [ -n "$pkg" ] || die "no Debian $flavour kernel matches '$kernel'; nearest series: $(kapt_nearest "$kernel" "$flavour")(ci/kernel-run.sh --list shows all)"
  kdir="$CACHE/$pkg"
  [ -f "$kdir/.complete" ] || fetch_kernel "$pkg" "$kdir"
  kver=$(cat "$kdir/kver")
  vmlinux="$kdir/vmlinux"
  modules=$(cat "$kdir/moddir" 2>/dev/null || echo "$kdir/pkg/lib/modules/$kver")
  ksrc="$(head -1 "$kdir/deb")"
else
  [ -f "$vmlinuz" ] || die "no such kernel image: $vmlinuz"
  # A bzImage carries "HdrS" at 0x202 (the boot protocol's header); a
  # vmlinux is an ELF. Anything else never boots: say so instead of a
  # qemu run that times out.
  magic=$(head -c 4 "$vmlinuz" | od -An -c | tr -d ' ')
  hdrs=$(dd if="$vmlinuz" bs=1 skip=514 count=4 2>/dev/null | tr -d '\0' || true)
  [ "$magic" = 177ELF ] || [ "$hdrs" = HdrS ] || no_kernel "$vmlinuz is not a kernel image (neither a bzImage nor an ELF vmlinux)"
  [ "$magic" != 177ELF ] || LC_ALL=C grep -aqm1 'Linux version [0-9]' "$vmlinuz" \
    || no_kernel "$vmlinuz is an ELF file but not a Linux kernel (no 'Linux version' banner)"
  kver=""
  if [ -n "$modules" ]; then
    [ -f "$modules/modules.dep" ] || [ -f "$modules/modules.order" ] || die "$modules is not a /lib/modules/<version> directory"
    kver=$(basename "$(cd "$modules" && pwd)")
  fi
  [ -n "$kver" ] || kver=$(LC_ALL=C grep -aoE '[2-9]\.[0-9]+\.[0-9]+[^ ]* \(' "$vmlinuz" | head -1 | cut -d' ' -f1 || true)
  [ -n "$kver" ] || kver=custom
  kdir="$CACHE/custom-$kver"; mkdir -p "$kdir"
  vmlinux="$kdir/vmlinux"
  if [ -n "$modules" ] && [ ! -f "$modules/modules.dep" ]; then
    die "$modules has no modules.dep: run depmod -b <root> $kver first"
  fi
  # Two builds of one tree share a release (a bisect's every step, a build
  # without one option): the cached copy is keyed by the image's path, size
  # and mtime, not by "newer than", which booted an older build's stale copy.
  stamp="$(realpath "$vmlinuz") $(stat -c '%s %Y' "$vmlinuz")"
  if [ ! -f "$vmlinux" ] || [ "$(cat "$kdir/source" 2>/dev/null)" != "$stamp" ]; then
    "$HERE/kernel/extract-vmlinux.sh" "$vmlinuz" "$vmlinux" || { log "cannot extract vmlinux: booting the bzImage"; cp "$vmlinuz" "$vmlinux"; }
    echo "$stamp" > "$kdir/source"
  fi
  ksrc="$vmlinuz"
  if [ -z "$kconfig" ]; then
    d=$(dirname "$(realpath "$vmlinuz")")
    for _ in 1 2 3 4; do
      [ -f "$d/.config" ] && { kconfig="$d/.config"; break; }
      d=$(dirname "$d")
    done
  fi
fi
if [ -z "$kconfig" ] && [ -n "$kernel" ]; then
  kconfig=$(ls "$kdir/pkg/boot/config-$kver" 2>/dev/null || true)
fi
[ -z "$kconfig" ] || [ -f "$kconfig" ] || die "no such config: $kconfig"
[ -n "$out" ] || out="$ROOT/target/kernel/$kver$( [ "$cgroup" = v1 ] && echo -v1 || true).json"
mkdir -p "$(dirname "$out")"
work="$ROOT/target/kernel/work-$kver-$cgroup"
mkdir -p "$work"

# --- the suite and the guest ----------------------------------------------
if [ -n "$prebuilt" ]; then
  [ -x "$prebuilt" ] || die "no such binary: $prebuilt"
  bin="$prebuilt"
elif [ "$profile" = release ]; then
  (cd "$ROOT" && cargo build -q --release --bin isocheck) || die "cargo build failed"
  bin=""
else
  (cd "$ROOT" && cargo build -q --bin isocheck) || die "cargo build failed"
fi
[ -n "$bin" ] || bin="${CARGO_TARGET_DIR:-$ROOT/target}/$profile/isocheck"
dbgexit="$CACHE/debug-exit"
if [ ! -x "$dbgexit" ] || [ "$HERE/kernel/debug-exit.c" -nt "$dbgexit" ]; then
  gcc -static -O2 -o "$dbgexit" "$HERE/kernel/debug-exit.c" || die "gcc -static debug-exit.c failed (needs libc6-dev)"
fi
tools_img="$CACHE/tools.ext4"
if [ "$userspace" != host ]; then
  say() { log "$@"; }
  RELEASE=$userspace ROOT_KIND=guest
  MIRROR=$(debian_mirror) || die "no Debian mirror for --userspace"
  uroot=$(release_root) || die "the $userspace userspace could not be built (above)"
  tools_img="$uroot.ext4"
  if [ ! -f "$tools_img" ]; then
    mib=$(du -sm "$uroot" | cut -f1)
    mkfs.ext4 -q -F -L "isocheck-$userspace" -O ^has_journal -E root_owner=0:0 -d "$uroot" "$tools_img.tmp" "$((mib * 11 / 10 + 64))M" \
      || die "mkfs.ext4 -d $uroot failed"
    mv "$tools_img.tmp" "$tools_img"
  fi
  log "userspace $userspace: $(grep -E '^(docker.io|containerd|runc|crun|gcc)=' "$uroot.info" | tr '\n' ' ')"
fi
{
  echo "CGROUP=$cgroup"
  echo "USERSPACE=$([ "$userspace" = host ] || echo "$userspace")"
  echo "RUNTIME=${runtime:-runc}"
  echo "JOBS=$jobs"
  echo "FILTERS='${filters[*]:-}'"
} > "$work/guest.conf"
printf '%s\n' "$guest_exec" > "$work/exec.sh"
build_base "$CACHE/base.cpio"
parts=("$CACHE/base.cpio")
if [ "$userspace" = host ]; then
  build_tools "$CACHE/tools.ext4" "$CACHE/tools-links.cpio" "$CACHE/base.cpio"
  parts+=("$CACHE/tools-links.cpio")
fi
if [ -n "$modules" ]; then
  build_modules "$kver" "$modules" "$kdir/modules.cpio"
  parts+=("$kdir/modules.cpio")
else
  log "no modules directory: veth, bridge, overlay and netfilter exist in the guest only if built in"
fi
build_suite "$work/suite.cpio" "$bin" "$dbgexit" "$work/guest.conf" "$work/exec.sh"
parts+=("$work/suite.cpio")
# The booted kernel's .config as /etc/isocheck/kernel.config: the guest's
# kconfig needs read it (ISOCHECK_KCONFIG, set by isocheck-init) where the
# kernel has no /proc/config.gz, as Debian's have not. An archive of its own,
# so the cached parts stay the same for every kernel.
rm -f "$work/kconfig.cpio"
if [ -n "$kconfig" ]; then
  rm -rf "$work/kconfig.d"; mkdir -p "$work/kconfig.d/etc/isocheck"
  cp "$kconfig" "$work/kconfig.d/etc/isocheck/kernel.config"
  mkcpio "$work/kconfig.d" "$work/kconfig.cpio"; rm -rf "$work/kconfig.d"
  parts+=("$work/kconfig.cpio")
  log "kernel config: $kconfig"
else
  log "no kernel config found: in the guest, kconfig needs fall back to /proc/config.gz or the runtime probes"
fi
# The last guest run's durations on this kernel: the runner starts the
# longest rows first (the Docker rows), so no slow row starts last and runs
# alone on an idle vCPU. A scheduling hint only; absent on a first run.
hint="$CACHE/durations-$kver-$cgroup.json"
if [ -s "$hint" ]; then
  rm -rf "$work/hint.d"; mkdir -p "$work/hint.d/root/.cache/isocheck"
  cp "$hint" "$work/hint.d/root/.cache/isocheck/durations.json"
  mkcpio "$work/hint.d" "$work/hint.cpio"; rm -rf "$work/hint.d"
  parts+=("$work/hint.cpio")
fi
cat "${parts[@]}" > "$work/initramfs.cpio"
t_built=$(date +%s.%N)
log "kernel $kver ($ksrc), initramfs $(du -m "$work/initramfs.cpio" | cut -f1) MiB, prepared in $(python3 -c "print(round($t_built-$t_start,1))") s"

# --- qemu -------------------------------------------------------------------
# boot ACCEL TIMEOUT: one guest run; sets qrc (qemu's status, 124 on timeout).
boot() {
  local acc="$1" limit="$2" cpu=qemu64 accopt=(-accel "tcg,thread=multi")
  if [ "$acc" = kvm ]; then accopt=(-enable-kvm); cpu=host; fi
  : > "$work/console.log"; : > "$work/report.out"
  set +e
  timeout -k 5 "$limit" qemu-system-x86_64 "${accopt[@]}" -M pc -cpu "$cpu" -smp "$smp" -m "$mem" \
    -nodefaults -nographic -no-reboot \
    -kernel "$vmlinux" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init quiet" \
    -serial "file:$work/console.log" -serial "file:$work/report.out" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -drive "file=$tools_img,if=virtio,format=raw,readonly=on" \
    -monitor none </dev/null >"$work/qemu.log" 2>&1 &
  qpid=$!
  wait "$qpid"; qrc=$?
  set -e
}

kvm_verdict="$CACHE/kvm-$(uname -r)"
use=tcg
if [ "$accel" = kvm ]; then use=kvm
elif [ "$accel" = auto ] && [ -w /dev/kvm ] && [ "$(cat "$kvm_verdict" 2>/dev/null)" != broken ]; then use=kvm
fi
t_q0=$(date +%s.%N)
if [ "$use" = kvm ]; then
  # KVM boots in a second where it works; on hosts where it cannot run stock
  # kernels (nested Firecracker) the guest never reaches init: give it a short
  # probe, remember the verdict for this host kernel, fall back to TCG.
  boot kvm "$([ "$accel" = kvm ] && echo "$timeout" || echo 20)"
  if grep -q ISOCHECK-BOOTED "$work/report.out"; then
    echo works > "$kvm_verdict"
  elif [ "$accel" = auto ]; then
    log "KVM did not boot the guest (qemu status $qrc): falling back to TCG, remembered in $kvm_verdict"
    echo broken > "$kvm_verdict"
    use=tcg
    t_q0=$(date +%s.%N)
    boot tcg "$timeout"
  fi
else
  boot tcg "$timeout"
fi
t_q1=$(date +%s.%N)

# --- the verdict ----------------------------------------------------------
rc=0
python3 "$HERE/kernel/collect.py" --report-out "$work/report.out" --console "$work/console.log" \
  --qemu-status "$qrc" --timeout "$timeout" --kernel "$kver" --source "$ksrc" --accel "$use" \
  --cgroup "$cgroup" --wall "$(python3 -c "print($t_q1-$t_q0)")" --out "$out" || rc=$?
if [ -n "$bisect" ]; then
  rc=0
  python3 "$HERE/kernel/verdict.py" "$out" || rc=$?
fi
python3 - "$out" "$hint" <<'PY' || true
import json, sys
rows = json.load(open(sys.argv[1])).get("experiments", [])
d = {r["id"]: r["duration_ms"] for r in rows if r.get("status") != "ignored" and r["id"] != "kernel.boot"}
if d:
    json.dump(d, open(sys.argv[2], "w"))
PY
exit "$rc"
