#!/usr/bin/env bash
# Installs the host packages the experiments need. Idempotent: packages already
# present are skipped, so a second run costs one dpkg query.
# Usage: ci/install-host-deps.sh [--docker] [--engines] [--qemu] [--locales] [--browser]
# --engines installs mmdebstrap, which builds the Debian releases' engine
# roots of ci/docker-engine.sh --release.
# --locales also generates de_DE.UTF-8 and fr_FR.UTF-8, to check that the
# suite gives the same verdicts under a translated locale
# (LC_ALL=de_DE.UTF-8 ci/isocheck: every command it reads runs with LC_ALL=C).
# --browser installs chromium for the HTML report's headless-browser test.
set -euo pipefail

want=(iproute2 iptables iputils-ping util-linux procps cgroup-tools
      libseccomp-dev gcc pkg-config busybox-static python3 nftables
      hostname tar)  # hostname, tar: Essential on Debian; listed because rows run them
locales=()
for arg in "$@"; do
  case "$arg" in
    --docker) want+=(docker.io) ;;
    --engines) want+=(mmdebstrap debian-archive-keyring) ;;
    # kmod: depmod for the guest's modules. The guest's tools image is made of
    # the host's installed packages: its engine, and apparmor, since Debian's
    # kernels enforce AppArmor and dockerd refuses containers without
    # apparmor_parser (a new machine has none; the host's kernel has no AppArmor).
    --qemu) want+=(qemu-system-x86 kmod libc6-dev docker.io containerd runc tini apparmor) ;;
    --locales) want+=(locales); locales=(de_DE.UTF-8 fr_FR.UTF-8) ;;
    --browser) want+=(chromium fonts-dejavu-core) ;;   # the HTML report's headless-browser test
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-host-deps: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "install-host-deps: needs root to install packages; rerun with sudo" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  echo "install-host-deps: not a Debian/Ubuntu host; install by hand: ${want[*]}" >&2
  exit 2
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# Generates the wanted locales that `locale -a` lacks (after the packages).
gen_locales() {
  local l norm todo=()
  for l in "${locales[@]}"; do
    norm=$(printf '%s' "$l" | sed 's/UTF-8/utf8/')
    locale -a 2>/dev/null | grep -qx "$norm" || todo+=("$l")
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  for l in "${todo[@]}"; do
    sed -i "s/^# *\($l UTF-8\)/\1/" /etc/locale.gen
    grep -q "^$l UTF-8" /etc/locale.gen || echo "$l UTF-8" >> /etc/locale.gen
  done
  echo "install-host-deps: generating ${todo[*]}" >&2
  locale-gen >/dev/null
}

if [ ${#missing[@]} -eq 0 ]; then
  gen_locales
  exit 0
fi

echo "install-host-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# qemu-system-x86 on Debian 12 comes from backports (the bookworm one conflicts
# with the machine's qemu-utils from backports).
extra=()
if printf '%s\n' "${missing[@]}" | grep -qx qemu-system-x86 && grep -qs bookworm /etc/os-release; then
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/isocheck-backports.list
    apt-get update -qq >/dev/null
  fi
  extra=(-t bookworm-backports)
fi
apt-get install -y -qq --no-install-recommends "${extra[@]}" "${missing[@]}" >/dev/null
gen_locales
