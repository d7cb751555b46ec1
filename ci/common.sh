# Shared by ci/test and ci/isocheck: become able to act as root, install the
# host packages, and start a Docker engine when none answers.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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

"${AS_ROOT[@]}" ci/install-host-deps.sh --docker

# This shell registers as a user of the engine (by its pid): the engine is
# stopped only if this run's start started it, and never while another run
# (another ci/test or ci/isocheck at the same time) still uses it.
engine_user=0
start_engine() {
  if [ "${ISOCHECK_DOCKER:-1}" = 0 ]; then return; fi
  if "${AS_ROOT[@]}" ci/docker-engine.sh start --user $$; then
    engine_user=1
  else
    echo "isocheck: no Docker engine could be started: the docker.* experiments will be ignored (ci/docker-engine.sh status)" >&2
  fi
}
stop_engine() {
  if [ "$engine_user" = 1 ]; then "${AS_ROOT[@]}" ci/docker-engine.sh stop --user $$ || true; fi
}
