#!/usr/bin/env bash
# Checks ci/docker-engine.sh's user accounting with a fake engine (a script
# named dockerd) and a fake client, in a state directory of its own, so the
# host's real engine is never touched:
# - a run that started the engine leaves it running while another run uses it;
#   the last user stops it;
# - an engine started by a plain `start` (outside a run) outlives every run;
# - a plain `stop` refuses while a run still uses the engine;
# - an unknown --release or --runtime exits 2 naming the valid ones.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
fake=$(mktemp -d /tmp/isocheck-engine-test.XXXXXX)
users=()
cleanup() {
  local rc=$? p
  if [ "$rc" != 0 ]; then echo "FAIL (exit $rc at line ${failed_line:-?}); engine log:"; cat "$fake/log" 2>/dev/null; fi
  # The fake engine, whatever its record says: only processes run from this
  # test's own directory.
  for p in /proc/[0-9]*; do
    grep -qasF "$fake/bin/dockerd" "$p/cmdline" 2>/dev/null && kill "${p#/proc/}" 2>/dev/null
  done
  for u in "${users[@]}"; do kill "$u" 2>/dev/null || true; done
  rm -rf "$fake"
  return "$rc"
}
trap 'failed_line=$LINENO' ERR
trap cleanup EXIT
mkdir -p "$fake/bin"
cat >"$fake/bin/dockerd" <<EOS
#!/bin/bash
touch "$fake/up"; trap 'rm -f "$fake/up"; exit 0' TERM
while :; do sleep 0.1; done
EOS
cat >"$fake/bin/docker" <<EOS
#!/bin/bash
[ "\$1" = version ] && { [ -e "$fake/up" ] || exit 1; echo fake; }
exit 0
EOS
chmod +x "$fake/bin/dockerd" "$fake/bin/docker"
export PATH="$fake/bin:$PATH" ISOCHECK_DOCKER_STATE="$fake/state" ISOCHECK_DOCKER_CLI="$fake/bin/docker"
engine() { "$here/ci/docker-engine.sh" "$@" >>"$fake/log" 2>&1; }
up() { [ -e "$fake/up" ]; }
# A run of the suite, as far as the script can tell: a live process.
user() { sleep 600 >/dev/null 2>&1 & users+=($!); }
fail() { echo "FAIL: $*"; cat "$fake/log"; exit 1; }

user; a=$!
user; b=$!
engine start --user "$a"; up || fail "engine not started"
engine start --user "$b"
engine stop --user "$a"; up || fail "A stopped the engine B still uses"
kill "$a"
engine stop --user "$b"; sleep 0.3; up && fail "the last user did not stop the engine"

engine start; up || fail "manual start"
user; c=$!
engine start --user "$c"
engine stop; up || fail "a plain stop took the engine from a running user"
engine stop --user "$c"; up || fail "a run stopped an engine started outside it"
engine stop; sleep 0.3; up && fail "a plain stop did not stop a manual engine"
# Bad input exits 2 before any work, naming the valid values.
for bad in "--release focal" "--release sid --runtime youki" "--runtime crun"; do
  read -ra opts <<<"$bad"
  rc=0; out=$("$here/ci/docker-engine.sh" start "${opts[@]}" 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "start $bad exited $rc, not 2"
  grep -q "bookworm|trixie|sid\|runc|crun" <<<"$out" || fail "start $bad: no valid values in: $out"
done
echo "docker-engine users: ok"
