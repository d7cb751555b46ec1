#!/usr/bin/env bash
# Starts, stops and reports the Docker engine the docker.* experiments run on.
# Usage: ci/docker-engine.sh start|stop|status [--user PID] [--release R] [--runtime RT]
#        ci/docker-engine.sh sweep
#
# --release host|bookworm|trixie|sid  (default host: the engine of this
#         machine, as below). A Debian release's engine runs beside it, from
#         a root of that release's packages (ci/engine-release.sh), with its
#         own socket, state, bridge and users; the host's engine is never
#         stopped or changed. The last line of `start` is DOCKER_HOST=unix://…
# --runtime runc|crun  the release engine's default OCI runtime (--add-runtime).
# sweep   stops every release engine whose starter and users are all gone
#         (a run killed by SIGKILL), as the next run's stop would.
#
# --user PID  (ci/test, ci/isocheck) registers process PID as a user of the
#         engine on start and unregisters it on stop. Users are files under
#         /run/isocheck-docker/users, named PID-STARTTIME, so a user that died
#         without stopping (SIGKILL) is recognised as gone, and a reused pid
#         is not mistaken for it. Every change happens under flock on
#         /run/isocheck-docker/lock, so concurrent runs see one state.
#         stop --user stops the engine only when isocheck started it for a
#         user (not with a plain `start`), and no other live user is left.
#
# start   when an engine already answers, uses it and changes nothing; otherwise
#         starts Debian's dockerd with --iptables=false --ip-forward=false (so
#         the host firewall and forwarding stay as they are), records that it
#         did under /run/isocheck-docker/, and waits (bounded) until
#         `docker version` answers.
# stop    only when this script started the engine, and (with --user) only
#         the last user of an engine a user started; a plain `stop` refuses
#         while runs still use it. Removes the suite's
#         containers (label isocheck.tag) and images (label isocheck.run), then
#         stops dockerd by its pid, then removes the docker0 bridge, the
#         engine's state directories (/var/lib/docker, /var/run/docker) and
#         its parent cgroups (<hierarchy>/docker) if they did not exist
#         before `start`. A host's own engine is left
#         exactly as it was.
# status  prints whether an engine answers, its versions, and who started it.
# All three are idempotent. Install the engine with ci/install-host-deps.sh --docker.
set -euo pipefail

BASE_STATE=${ISOCHECK_DOCKER_STATE:-/run/isocheck-docker}
STATE=$BASE_STATE
# Per engine (the host's, or one release engine's state directory).
state_files() {
  PIDFILE=$STATE/dockerd.pid
  # Who started the engine: `manual` (a plain `start`: stopped only by a plain
  # `stop`) or a user's PID-STARTTIME. A pid file without it counts as manual.
  OWNER=$STATE/owner
  USERS=$STATE/users
  LOG=$STATE/dockerd.log
}
state_files
LOCK_WAIT=${ISOCHECK_DOCKER_LOCK_WAIT:-120}
START_WAIT=${ISOCHECK_DOCKER_START_WAIT:-30}
STOP_WAIT=${ISOCHECK_DOCKER_STOP_WAIT:-20}

# The Debian client talks the engine's API (1.41) natively; a newer client
# found first on PATH (e.g. /usr/local/bin/docker 28) negotiates down, but the
# packaged one is the pair the engine was released with.
if [ -n "${ISOCHECK_DOCKER_CLI:-}" ]; then DOCKER=$ISOCHECK_DOCKER_CLI
elif [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

say() { echo "docker-engine: $*" >&2; }
# shellcheck source=ci/engine-release.sh
source "$(dirname "${BASH_SOURCE[0]}")/engine-release.sh"

answers() { timeout 5 "$DOCKER" version >/dev/null 2>&1; }

our_pid() {
  [ -s "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE")
  [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

versions() {
  timeout 5 "$DOCKER" version --format \
    'client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})' \
    2>/dev/null || echo "no engine answers"
}

# PID-STARTTIME of a live process (the start time tells a reused pid apart).
user_key() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}') || return 1
  [ -n "$st" ] || return 1
  echo "$1-$st"
}

user_alive() {
  local key=$1 pid=${1%%-*}
  [ "$(user_key "$pid" 2>/dev/null)" = "$key" ]
}

# Live users other than $1; removes the records of dead ones.
other_users() {
  local f n=0
  [ -d "$USERS" ] || { echo 0; return; }
  for f in "$USERS"/*; do
    [ -e "$f" ] || continue
    f=${f##*/}
    if [ "$f" = "$1" ]; then continue; fi
    if user_alive "$f"; then n=$((n + 1)); else rm -f "$USERS/$f"; fi
  done
  echo "$n"
}

with_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w "$LOCK_WAIT" 9 || { say "could not lock $STATE/lock within ${LOCK_WAIT}s"; return 1; }
  "$@"
}

cmd_status() {
  if answers; then
    if pid=$(our_pid); then
      echo "running, started by isocheck (dockerd pid $pid): $(versions)"
    else
      echo "running, the host's own engine (isocheck leaves it alone): $(versions)"
    fi
    return 0
  fi
  echo "not running"
  return 3
}

register() {
  if [ -n "$ME" ]; then mkdir -p "$USERS" && : >"$USERS/$ME"; fi
}

cmd_start() {
  if answers; then
    if pid=$(our_pid); then
      say "already started by isocheck (dockerd pid $pid): using it"
    else
      say "an engine already answers: using it, changing nothing"
    fi
    register
    print_host
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    say "starting dockerd needs root; rerun with sudo"
    return 2
  fi
  mkdir -p "$STATE"
  if [ "$RELEASE" = host ]; then
    host_start_engine || return
  else
    release_start_engine || return 1
  fi
  echo "${ME:-manual}" >"$OWNER"
  local deadline=$((SECONDS + START_WAIT))
  while ! answers; do
    # Not our_pid: a release engine is sh and unshare before it is dockerd.
    if ! [ -d "/proc/$(cat "$PIDFILE")" ]; then
      say "dockerd exited while starting; its log ($LOG):"
      tail -n 20 "$LOG" >&2 || true
      cmd_stop || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "dockerd did not answer within ${START_WAIT}s; stopping it. Log tail:"
      tail -n 20 "$LOG" >&2 || true
      cmd_stop || true
      return 1
    fi
    sleep 0.1
  done
  register
  readlink "/proc/$(cat "$PIDFILE")/ns/mnt" >"$STATE/mntns" || true
  say "started dockerd (pid $(cat "$PIDFILE")): $(versions)"
  print_host
}

# The last line of start: where the engine answers, for the caller to export.
print_host() { echo "DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"; }

host_start_engine() {
  if ! command -v dockerd >/dev/null; then
    say "dockerd not found: install it with ci/install-host-deps.sh --docker (Debian package docker.io)"
    return 2
  fi
  # The bridge is the engine's: remove it on stop only if it was not here before.
  if ip link show docker0 >/dev/null 2>&1; then echo yes >"$STATE/docker0-existed"; else echo no >"$STATE/docker0-existed"; fi
  # So are its state directories: a machine that had none gets none back.
  : >"$STATE/created-dirs"
  for d in /var/lib/docker /var/run/docker; do
    [ -e "$d" ] || echo "$d" >>"$STATE/created-dirs"
  done
  # And its parent cgroups (`docker` under each hierarchy, cgroupfs driver).
  : >"$STATE/created-cgroups"
  for c in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    [ -e "${c%/}/docker" ] || echo "${c%/}/docker" >>"$STATE/created-cgroups"
  done
  # 9>&-: the engine must not hold the state lock for its lifetime.
  setsid dockerd --iptables=false --ip-forward=false </dev/null >"$LOG" 2>&1 9>&- &
  echo $! >"$PIDFILE"
}

# Whether this stop may take the engine down: see the header.
may_stop() {
  local owner n
  owner=$(cat "$OWNER" 2>/dev/null || echo manual)
  n=$(other_users "$ME")
  if [ -n "$ME" ]; then
    rm -f "$USERS/$ME"
    if [ "$owner" = manual ]; then
      say "the engine was started outside a run (plain start): leaving it running"
      return 1
    fi
    if [ "$owner" != "$ME" ] && user_alive "$owner"; then
      say "the engine belongs to another run ($owner) that still runs: leaving it to it"
      return 1
    fi
  fi
  if [ "$n" -gt 0 ]; then
    say "$n other run(s) still use the engine: leaving it running"
    return 1
  fi
}

cmd_stop() {
  local pid
  if pid=$(our_pid) && ! may_stop; then return 0; fi
  if [ -n "$ME" ]; then rm -f "$USERS/$ME"; fi
  if ! pid=$(our_pid); then
    if [ -e "$PIDFILE" ]; then
      say "the dockerd isocheck started is gone; clearing its record"
      rm -f "$PIDFILE"
    else
      say "no engine started by isocheck; leaving any engine alone"
    fi
    if [ "$(other_users "$ME")" = 0 ]; then
      if [ "$RELEASE" != host ]; then release_cleanup "$(cat "$STATE/mntns" 2>/dev/null)"; fi
      rm -f "$STATE/docker0-existed" "$STATE/created-dirs" "$STATE/created-cgroups" "$LOG" "$OWNER" "$STATE/mntns" "$STATE/root"
    fi
    return 0
  fi
  local ns
  ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || cat "$STATE/mntns" 2>/dev/null || true)
  # Containers first: their shims outlive dockerd otherwise.
  if answers; then
    local ids
    mapfile -t ids < <(timeout 20 "$DOCKER" ps -aq --filter label=isocheck.tag || true)
    if [ ${#ids[@]} -gt 0 ]; then timeout 60 "$DOCKER" rm -f "${ids[@]}" >/dev/null || true; fi
    mapfile -t ids < <(timeout 20 "$DOCKER" image ls -aq --filter label=isocheck.run | sort -u || true)
    if [ ${#ids[@]} -gt 0 ]; then timeout 60 "$DOCKER" image rm -f "${ids[@]}" >/dev/null || true; fi
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_WAIT))
  while [ -d "/proc/$pid" ]; do
    if [ $SECONDS -ge $deadline ]; then
      say "dockerd (pid $pid) still running after ${STOP_WAIT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  if [ "$RELEASE" = host ]; then host_cleanup; else release_cleanup "$ns"; fi
  rm -f "$PIDFILE" "$OWNER" "$LOG" "$STATE/mntns" "$STATE/root"
  say "stopped dockerd (pid $pid)"
}

# The host engine's traces that were not there before its start.
host_cleanup() {
  if [ "$(cat "$STATE/docker0-existed" 2>/dev/null)" = no ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0 || say "could not delete the docker0 bridge"
  fi
  local d
  [ -f "$STATE/created-dirs" ] && while read -r d; do
    if [ -z "$d" ] || [ ! -e "$d" ]; then continue; fi
    d=$(readlink -f "$d")
    # Never walk into a mount left below it (an overlay of a container).
    if awk -v d="$d" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      say "not removing $d: something is still mounted below it"
    else
      rm -rf --one-file-system "$d"
    fi
  done <"$STATE/created-dirs"
  # rmdir only: a cgroup that still has children or tasks stays, loudly.
  [ -f "$STATE/created-cgroups" ] && while read -r d; do
    if [ -z "$d" ] || [ ! -d "$d" ]; then continue; fi
    rmdir "$d" 2>/dev/null || say "could not remove cgroup $d (still in use?)"
  done <"$STATE/created-cgroups"
  rm -f "$STATE/docker0-existed" "$STATE/created-dirs" "$STATE/created-cgroups"
}

# Release engines whose starter and users are all gone (a run killed by
# SIGKILL): stopped as their last user's stop would have, each under its lock.
cmd_sweep() {
  local d
  for d in "$BASE_STATE"/engines/*/; do
    [ -e "$d/dockerd.pid" ] || [ -e "$d/mntns" ] || continue
    d=${d%/}; d=${d##*/}
    RELEASE=${d%-*} RUNTIME=${d##*-}
    if ! is_one_of "$RELEASE" "${RELEASES[@]}" || ! is_one_of "$RUNTIME" "${RUNTIMES[@]}"; then continue; fi
    ( release_layout; state_files
      owner=$(cat "$OWNER" 2>/dev/null || echo manual)
      [ "$owner" != manual ] || exit 0
      with_lock sweep_one ) || true
  done
}

sweep_one() {
  local owner
  owner=$(cat "$OWNER" 2>/dev/null || echo manual)
  if [ "$owner" = manual ] || user_alive "$owner" || [ "$(other_users "")" != 0 ]; then return 0; fi
  say "$INST: its runs are gone (killed?): stopping it"
  cmd_stop
}

usage() {
  echo "usage: $0 start|stop|status [--user PID] [--release $(valid host "${RELEASES[@]}")] [--runtime $(valid "${RUNTIMES[@]}")] | sweep" >&2
  exit 2
}
cmd=${1:-}
[ $# -gt 0 ] && shift
ME='' RELEASE=host RUNTIME=''
while [ $# -gt 0 ]; do
  case "$1" in
    --user) [ -n "${2:-}" ] || usage
      ME=$(user_key "$2") || { say "--user $2: no such process"; exit 2; }
      shift 2 ;;
    --release|--engine) RELEASE=${2:-}; shift 2 || usage ;;
    --runtime) RUNTIME=${2:-}; shift 2 || usage ;;
    *) usage ;;
  esac
done
if ! is_one_of "$RELEASE" host "${RELEASES[@]}"; then
  say "unknown release '$RELEASE': valid are $(valid host "${RELEASES[@]}")"; exit 2
fi
if [ -n "$RUNTIME" ] && ! is_one_of "$RUNTIME" "${RUNTIMES[@]}"; then
  say "unknown runtime '$RUNTIME': valid are $(valid "${RUNTIMES[@]}")"; exit 2
fi
if [ "$RELEASE" = host ]; then
  if [ -n "$RUNTIME" ] && [ "$RUNTIME" != runc ]; then
    say "--runtime $RUNTIME needs --release $(valid "${RELEASES[@]}"): the host's engine (runc) is never changed"
    exit 2
  fi
else
  RUNTIME=${RUNTIME:-runc}
  release_layout
  state_files
  if [ "$cmd" = start ]; then MIRROR=$(debian_mirror) || exit 1; fi
fi
case "$cmd" in
  start) with_lock cmd_start ;;
  stop) with_lock cmd_stop ;;
  status) cmd_status ;;
  sweep) cmd_sweep ;;
  *) usage ;;
esac
