#!/usr/bin/env bash
# Starts, stops and reports the Docker engine the docker.* experiments run on.
# Usage: ci/docker-engine.sh start|stop|status
#
# start   when an engine already answers, uses it and changes nothing; otherwise
#         starts Debian's dockerd with --iptables=false --ip-forward=false (so
#         the host firewall and forwarding stay as they are), records that it
#         did under /run/isocheck-docker/, and waits (bounded) until
#         `docker version` answers.
# stop    only when this script started the engine: removes the suite's
#         containers (label isocheck.tag) and images (label isocheck.run), then
#         stops dockerd by its pid, then removes the docker0 bridge, the
#         engine's state directories (/var/lib/docker, /var/run/docker) and
#         its parent cgroups (<hierarchy>/docker) if they did not exist
#         before `start`. A host's own engine is left
#         exactly as it was.
# status  prints whether an engine answers, its versions, and who started it.
# All three are idempotent. Install the engine with ci/install-host-deps.sh --docker.
set -euo pipefail

STATE=/run/isocheck-docker
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
START_WAIT=${ISOCHECK_DOCKER_START_WAIT:-30}
STOP_WAIT=${ISOCHECK_DOCKER_STOP_WAIT:-20}

# The Debian client talks the engine's API (1.41) natively; a newer client
# found first on PATH (e.g. /usr/local/bin/docker 28) negotiates down, but the
# packaged one is the pair the engine was released with.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

say() { echo "docker-engine: $*" >&2; }

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

cmd_start() {
  if answers; then
    if pid=$(our_pid); then
      say "already started by isocheck (dockerd pid $pid)"
    else
      say "an engine already answers: using it, changing nothing"
    fi
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    say "dockerd not found: install it with ci/install-host-deps.sh --docker (Debian package docker.io)"
    return 2
  fi
  if [ "$(id -u)" != 0 ]; then
    say "starting dockerd needs root; rerun with sudo"
    return 2
  fi
  mkdir -p "$STATE"
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
  setsid dockerd --iptables=false --ip-forward=false </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + START_WAIT))
  while ! answers; do
    if ! our_pid >/dev/null; then
      say "dockerd exited while starting; its log ($LOG):"
      tail -n 20 "$LOG" >&2 || true
      rm -f "$PIDFILE"
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
  say "started dockerd (pid $(cat "$PIDFILE")): $(versions)"
}

cmd_stop() {
  local pid
  if ! pid=$(our_pid); then
    if [ -e "$PIDFILE" ]; then
      say "the dockerd isocheck started is gone; clearing its record"
      rm -f "$PIDFILE"
    else
      say "no engine started by isocheck; leaving any engine alone"
    fi
    rm -f "$STATE/docker0-existed" "$STATE/created-dirs" "$STATE/created-cgroups" "$LOG"
    rmdir "$STATE" 2>/dev/null || true
    return 0
  fi
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
  rm -f "$PIDFILE" "$STATE/docker0-existed" "$STATE/created-dirs" "$STATE/created-cgroups" "$LOG"
  rmdir "$STATE" 2>/dev/null || true
  say "stopped dockerd (pid $pid)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
