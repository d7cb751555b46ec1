# A Docker engine from a Debian release, beside the host's own: sourced by
# ci/docker-engine.sh (which holds the user accounting and the lock).
#
# The release's docker.io, containerd, runc, crun and tini need a newer glibc
# than the host's, so they run in a root of their own (mmdebstrap). The
# engine gets a mount namespace whose root is that tree (pivot_root, as
# docker-in-docker does): under chroot the processes `docker exec` starts see
# the engine's root, the host's /proc included, and user namespaces fail.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153  # RUNTIMES, RELEASE, RUNTIME: shared with the sourcing script

RELEASES=(bookworm trixie sid)
RUNTIMES=(runc crun)
ENGINE_CACHE=${ISOCHECK_ENGINE_CACHE:-/var/cache/isocheck/engines}
# Engine state that must not outlive the engine (images, containers, the
# upper layer over the root, which itself stays as built) is on disk, and
# /var/lib/docker is a bind of a plain directory: overlay2 cannot take an
# overlay as its upper layer.
DATA_BASE=${ISOCHECK_ENGINE_DATA:-/var/lib/isocheck/engines}

# Valid values, for messages.
valid() { local IFS='|'; echo "$*"; }

is_one_of() {
  local want=$1 v; shift
  for v in "$@"; do [ "$v" = "$want" ] && return 0; done
  return 1
}

# ROOT_KIND=guest (ci/kernel-run.sh --userspace) adds what the qemu guest's
# whole userspace needs: the experiments' tools, gcc and libseccomp's
# headers, and apparmor_parser (Debian's kernels enable AppArmor, and
# dockerd then needs it to load docker-default).
ROOT_KIND=${ROOT_KIND:-engine}
packages() {
  local p=(docker.io containerd runc crun tini iptables mount)
  # From trixie on the client is a package of its own.
  [ "$1" = bookworm ] || p+=(docker-cli)
  if [ "$ROOT_KIND" = guest ]; then
    p+=(apparmor iproute2 iputils-ping util-linux procps cgroup-tools gcc libc6-dev
        libseccomp-dev pkg-config busybox-static nftables hostname tar kmod)
  fi
  echo "${p[@]}"
}
root_prefix() { if [ "$ROOT_KIND" = guest ]; then echo "guest-$RELEASE"; else echo "$RELEASE"; fi; }

# The machine's configured Debian mirror (never a name fixed in this file):
# the first archive URI of apt's sources that is not the security archive.
debian_mirror() {
  if [ -n "${ISOCHECK_DEBIAN_MIRROR:-}" ]; then echo "$ISOCHECK_DEBIAN_MIRROR"; return; fi
  local u
  u=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}'
         grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
           sed 's/\[[^]]*\]//' | awk '{print $2}'; } |
       grep -v -- '-security' | grep -E '/debian/?$' | head -n 1)
  [ -n "$u" ] || { say "no Debian mirror in apt's sources; set ISOCHECK_DEBIAN_MIRROR=URL"; return 1; }
  echo "${u%/}"
}

# apt over the release's lists only, kept under the cache so that a warm
# start asks the mirror whether anything changed (an unchanged InRelease is
# a `Hit`) and reads versions without building anything.
release_apt() {
  local a=$ENGINE_CACHE/apt/$RELEASE tool=$1; shift
  "$tool" -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts="$a/none" \
    -o Dir::Etc::Preferences="$a/none/p" -o Dir::Etc::PreferencesParts="$a/none" \
    -o Dir::State="$a/state" -o Dir::State::Lists="$a/lists" -o Dir::State::status="$a/status" \
    -o Dir::Cache="$a/cache" -o Acquire::Check-Valid-Until=false -o Debug::NoLocking=1 \
    -o APT::Sandbox::User=root -o APT::Get::List-Cleanup=true "$@"
}

# `pkg=version` lines of the release's packages, as the mirror has them now.
# Read again only when the release's InRelease changed (apt-cache over a
# release's lists costs ~2 s; the update itself, unchanged, ~1 s).
mirror_versions() {
  local a=$ENGINE_CACHE/apt/$RELEASE sum out
  mkdir -p "$a/state" "$a/lists/partial" "$a/cache/archives/partial" "$a/none"
  : >"$a/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $RELEASE main" >"$a/sources.list"
  release_apt apt-get -qq update >"$a/update.log" 2>&1 || return 1
  sum=$(cat "$a/sources.list" "$a"/lists/*Release 2>/dev/null | sha256sum)
  local v=$a/versions-$ROOT_KIND
  if [ -s "$v" ] && [ "$(cat "$v.sum" 2>/dev/null)" = "$sum" ]; then
    cat "$v"; return 0
  fi
  # shellcheck disable=SC2046  # one word per package
  out=$(release_apt apt-cache show --no-all-versions $(packages "$RELEASE") 2>/dev/null |
        awk '/^Package:/ {p = $2} /^Version:/ {print p "=" $2}')
  local p
  for p in $(packages "$RELEASE"); do
    grep -q "^$p=" <<<"$out" || { say "$RELEASE has no package $p on $MIRROR"; return 1; }
  done
  # In packages() order, as root_versions prints them.
  for p in $(packages "$RELEASE"); do grep -m1 "^$p=" <<<"$out"; done >"$v"
  echo "$sum" >"$v.sum"
  cat "$v"
}

# The same lines read from a built root.
root_versions() {
  local p
  for p in $(packages "$RELEASE"); do
    echo "$p=$(dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${Version}' "$p")"
  done
}

key_of() { sha256sum | cut -c1-12; }

# Prints the path of the release's root, building it when no root of the
# mirror's current versions is cached. Offline, the newest cached root of
# the release is used, loudly.
release_root() {
  local versions key dir tmp
  mkdir -p "$ENGINE_CACHE"
  chmod 0700 "$ENGINE_CACHE" "${ENGINE_CACHE%/*}" 2>/dev/null || true
  # One release's lists and build at a time: its two runtimes' engines share
  # them. (Called in $(...): the descriptor closes with the subshell.)
  exec 8>"$ENGINE_CACHE/.lock-$RELEASE"
  flock -w 600 8 || { say "could not lock $ENGINE_CACHE/.lock-$RELEASE within 600 s"; return 1; }
  if ! versions=$(mirror_versions); then
    local d
    dir=
    for d in "$ENGINE_CACHE/$(root_prefix)"-*; do
      if [ -d "$d" ] && { [ -z "$dir" ] || [ "$d" -nt "$dir" ]; }; then dir=$d; fi
    done
    if [ -n "$dir" ]; then
      say "could not ask the mirror for $RELEASE's versions: using the cached root ${dir##*/}"
      echo "$dir"; return 0
    fi
    say "could not ask $MIRROR for $RELEASE's packages (apt-get update: $(tail -n 3 "$ENGINE_CACHE/apt/$RELEASE/update.log" 2>/dev/null | tr '\n' ' '))"
    return 1
  fi
  key=$(echo "$versions" | key_of)
  dir=$ENGINE_CACHE/$(root_prefix)-$key
  if [ -d "$dir" ]; then echo "$dir"; return 0; fi
  if ! command -v mmdebstrap >/dev/null; then
    "$(dirname "${BASH_SOURCE[0]}")/install-host-deps.sh" --engines >&2 || {
      say "mmdebstrap could not be installed (ci/install-host-deps.sh --engines)"; return 1; }
  fi
  # Built aside and renamed when complete: a failed build leaves nothing.
  tmp=$(mktemp -d "$ENGINE_CACHE/.build-$RELEASE.XXXXXX")
  say "building the $(root_prefix) root ($(echo "$versions" | tr '\n' ' ')) with mmdebstrap"
  local t0=$SECONDS
  if ! mmdebstrap --variant=essential --include="$(packages "$RELEASE" | tr ' ' ,)" \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      "$RELEASE" "$tmp/root" "deb $MIRROR $RELEASE main" >"$tmp/log" 2>&1; then
    say "building the $(root_prefix) root failed at mmdebstrap; its errors:"
    grep -E '^(E|W): ' "$tmp/log" | tail -n 8 >&2 || tail -n 8 "$tmp/log" >&2
    rm -rf --one-file-system "$tmp"
    return 1
  fi
  # Named by what was installed, in case the mirror moved during the build.
  key=$(root_versions "$tmp/root" | key_of)
  dir=$ENGINE_CACHE/$(root_prefix)-$key
  { root_versions "$tmp/root"; echo "size=$(du -sh "$tmp/root" | cut -f1)"; echo "built_s=$((SECONDS - t0))"; } >"$dir.info"
  if [ -d "$dir" ]; then rm -rf --one-file-system "$tmp"; else mv "$tmp/root" "$dir"; rm -rf "$tmp"; fi
  say "built $dir in $((SECONDS - t0)) s ($(sed -n 's/^size=//p' "$dir.info"))"
  echo "$dir"
}

# Per engine: state (socket, pidfile, exec root) on the host's /run, bound
# on the root's /run; data on disk. A bridge and cgroup parent of its own,
# so that it never shares docker0's addresses or the host engine's cgroups.
release_layout() {
  INST=$RELEASE-$RUNTIME
  STATE=$BASE_STATE/engines/$INST
  RUNDIR=$STATE/run
  SOCK=$RUNDIR/docker.sock
  DATA=$DATA_BASE/$INST
  # docker-*: the suite's host-network snapshots take such links, like
  # docker0, for an engine's, whose state comes and goes with containers.
  BRIDGE=docker-${RELEASE:0:3}-$RUNTIME
  local i r
  for i in "${!RELEASES[@]}"; do [ "${RELEASES[$i]}" = "$RELEASE" ] && r=$i; done
  [ "$RUNTIME" = crun ] && r=$((r + ${#RELEASES[@]}))
  SUBNET_PREFIX=172.30.$((200 + r))
  CGROUP_PARENT=isocheck-$INST
  export DOCKER_HOST=unix://$SOCK
}

# The mount namespace's setup, run by the host's sh in the new namespace
# before dockerd replaces it (expanded there, not here).
# shellcheck disable=SC2016
NS_SETUP='set -e
M=$DATA/merged
mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$DATA/upper,workdir=$DATA/work" "$M"
mkdir -p "$M/var/lib/docker" "$M/var/lib/containerd" "$M/oldroot" "$M/run"
mount --bind "$DATA/docker" "$M/var/lib/docker"
mount --bind "$DATA/containerd" "$M/var/lib/containerd"
mount --bind "$RUNDIR" "$M/run"
mount -t proc proc "$M/proc"
mount --rbind /sys "$M/sys"
mount --rbind /dev "$M/dev"
mount -t tmpfs tmpfs "$M/tmp"
cd "$M"
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec "$@"'

release_start_engine() {
  local root
  root=$(release_root) || return 1
  if ip -4 -o addr | grep -qF " $SUBNET_PREFIX." && ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "$SUBNET_PREFIX.0/24 is already in use on this host: cannot give $INST its bridge"
    return 1
  fi
  mkdir -p "$RUNDIR" "$DATA/merged" "$DATA/upper" "$DATA/work" "$DATA/docker" "$DATA/containerd"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET_PREFIX.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  local rt=()
  [ "$RUNTIME" = runc ] || rt=(--add-runtime "$RUNTIME=/usr/bin/$RUNTIME" --default-runtime "$RUNTIME")
  # 9>&-: the engine must not hold the state lock for its lifetime.
  ROOT=$root DATA=$DATA RUNDIR=$RUNDIR setsid unshare -m --propagation private -- \
    sh -c "$NS_SETUP" engine dockerd -H unix:///run/docker.sock --pidfile /run/docker.pid \
      --data-root /var/lib/docker --exec-root /run/docker --bridge "$BRIDGE" \
      --cgroup-parent "/$CGROUP_PARENT" --iptables=false --ip-forward=false "${rt[@]}" \
      </dev/null >"$LOG" 2>&1 9>&- &
  echo $! >"$PIDFILE"
  echo "$root" >"$STATE/root"
}

# After dockerd is gone: whatever still runs in its mount namespace (a shim
# whose container outlived `docker rm`), then the bridge, data and cgroups.
release_cleanup() {
  local ns=$1 p deadline=$((SECONDS + 5))
  if [ -n "$ns" ]; then
    while :; do
      local left=()
      for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && left+=("${p#/proc/}")
      done
      [ ${#left[@]} -gt 0 ] || break
      if [ $SECONDS -ge $deadline ]; then
        say "still in the engine's mount namespace after 5 s, killed: ${left[*]}"
        kill -KILL "${left[@]}" 2>/dev/null || true
        sleep 0.2
        break
      fi
      kill -TERM "${left[@]}" 2>/dev/null || true
      sleep 0.1
    done
  fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE" || say "could not delete the bridge $BRIDGE"
  fi
  local c
  for c in /sys/fs/cgroup/"$CGROUP_PARENT" /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
    [ -d "$c" ] || continue
    # Children first (rmdir only: a group with tasks stays, loudly).
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || say "could not remove cgroup $c (still in use?)"
  done
  if awk -v d="$DATA" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    say "not removing $DATA: something is still mounted below it"
  else
    rm -rf --one-file-system "$DATA"
  fi
  rm -rf "$RUNDIR"
}
