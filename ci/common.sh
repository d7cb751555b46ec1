# Shared by ci/test and ci/isocheck: become able to act as root, install the
# host packages, and start a Docker engine when none answers.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --engine R [--runtime RT] before the command: the Docker engine to run the
# docker rows against (ci/docker-engine.sh --release/--runtime). Checked
# here, before anything is installed or built. Sourced without arguments,
# this file shifts its caller's.
# shellcheck source=ci/engine-release.sh
source ci/engine-release.sh
ENGINE_ARGS=()
engine=host runtime=''
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=${2:-}; shift; shift || true ;;
    --runtime) runtime=${2:-}; shift; shift || true ;;
    *) break ;;
  esac
done
if ! is_one_of "$engine" host "${RELEASES[@]}"; then
  echo "isocheck: unknown --engine '$engine': valid are $(valid host "${RELEASES[@]}")" >&2; exit 2
fi
if [ -n "$runtime" ] && ! is_one_of "$runtime" "${RUNTIMES[@]}"; then
  echo "isocheck: unknown --runtime '$runtime': valid are $(valid "${RUNTIMES[@]}")" >&2; exit 2
fi
if [ "$engine" = host ] && [ -n "$runtime" ] && [ "$runtime" != runc ]; then
  echo "isocheck: --runtime $runtime needs --engine $(valid "${RELEASES[@]}"): the host's engine (runc) is never changed" >&2; exit 2
fi
ENGINE_ARGS=(--release "$engine")
if [ -n "$runtime" ]; then ENGINE_ARGS+=(--runtime "$runtime"); fi

# Root runs everything directly. A user (GitHub runner, laptop) keeps cargo
# and target/ as their own: only the installer, the engine and the test
# binaries run through sudo (cargo's runner), so target/ never turns root-owned.
if [ "$(id -u)" = 0 ]; then
  AS_ROOT=()
else
  command -v sudo >/dev/null || { echo "isocheck: not root and no sudo: run as root" >&2; exit 2; }
  AS_ROOT=(sudo -E)
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi
command -v cargo >/dev/null || {
  echo "isocheck: cargo not found on PATH: install Rust (rustup.rs), or with sudo keep PATH: sudo -E env \"PATH=\$PATH\" $0" >&2
  exit 2
}

deps=(--docker)
if [ "$engine" != host ]; then deps+=(--engines); fi
"${AS_ROOT[@]}" ci/install-host-deps.sh "${deps[@]}"

# This shell registers as a user of the engine (by its pid): the engine is
# stopped only if this run's start started it, and never while another run
# (another ci/test or ci/isocheck at the same time) still uses it.
engine_user=0
start_engine() {
  if [ "${ISOCHECK_DOCKER:-1}" = 0 ]; then return; fi
  # Engines of runs killed before their stop (SIGKILL).
  "${AS_ROOT[@]}" ci/docker-engine.sh sweep || true
  local out
  if out=$("${AS_ROOT[@]}" ci/docker-engine.sh start --user $$ "${ENGINE_ARGS[@]}"); then
    engine_user=1
    # The last line names the engine's socket; the suite reads DOCKER_HOST.
    export "${out##*$'\n'}"
  elif [ "$engine" != host ]; then
    # Never fall back to another engine than the one asked for.
    echo "isocheck: the $engine engine could not be started (above)" >&2
    exit 1
  else
    echo "isocheck: no Docker engine could be started: the docker.* experiments will be ignored (ci/docker-engine.sh status)" >&2
  fi
}
stop_engine() {
  if [ "$engine_user" = 1 ]; then "${AS_ROOT[@]}" ci/docker-engine.sh stop --user $$ "${ENGINE_ARGS[@]}" || true; fi
}
