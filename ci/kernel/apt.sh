# shellcheck shell=bash
# Sourced by ci/kernel-run.sh: a private apt configuration (its own sources,
# lists and package cache under the isocheck cache dir) so that fetching a
# kernel never changes the host's apt sources and works for releases the host
# does not track (5.10 lives in bullseye, 6.12 in bookworm-backports).

KAPT_DIR="$CACHE/apt"

kapt() {
  apt-get -q \
    -o Dir::Etc::SourceList="$KAPT_DIR/sources.list" \
    -o Dir::Etc::SourceParts="$KAPT_DIR/sources.list.d" \
    -o Dir::State::Lists="$KAPT_DIR/lists" \
    -o Dir::Cache="$KAPT_DIR/cache" \
    -o Dir::State::status="$KAPT_DIR/status" \
    -o Debug::NoLocking=1 \
    -o APT::Get::List-Cleanup=0 \
    -o Acquire::Languages=none \
    "$@"
}
kapt_cache() {
  apt-cache \
    -o Dir::Etc::SourceList="$KAPT_DIR/sources.list" \
    -o Dir::Etc::SourceParts="$KAPT_DIR/sources.list.d" \
    -o Dir::State::Lists="$KAPT_DIR/lists" \
    -o Dir::Cache="$KAPT_DIR/cache" \
    -o Dir::State::status="$KAPT_DIR/status" \
    "$@"
}

# Refreshes the private lists at most once a day (kernel point releases move
# slowly; CI must not pay an apt update per run).
kapt_update() {
  mkdir -p "$KAPT_DIR/lists/partial" "$KAPT_DIR/cache/archives/partial" "$KAPT_DIR/sources.list.d"
  : > "$KAPT_DIR/status.tmp"; [ -f "$KAPT_DIR/status" ] || mv "$KAPT_DIR/status.tmp" "$KAPT_DIR/status"
  local mirror="${ISOCHECK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  local sec="${ISOCHECK_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
  local kr=/usr/share/keyrings/debian-archive-keyring.gpg
  local want
  want="deb [arch=amd64 signed-by=$kr] $mirror bookworm main
deb [arch=amd64 signed-by=$kr] $mirror bookworm-backports main
deb [arch=amd64 signed-by=$kr] $sec bookworm-security main
deb [arch=amd64 signed-by=$kr] $mirror bullseye main
deb [arch=amd64 signed-by=$kr] $sec bullseye-security main"
  if [ ! -f "$kr" ]; then
    die "no $kr: install debian-archive-keyring (apt-get install debian-archive-keyring)"
  fi
  local stamp="$KAPT_DIR/updated"
  if [ "$(cat "$KAPT_DIR/sources.list" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" > "$KAPT_DIR/sources.list"
    rm -f "$stamp"
  fi
  if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ] || [ "${1:-}" = force ]; then
    log "refreshing the private apt lists ($KAPT_DIR)"
    kapt update >"$KAPT_DIR/update.log" 2>&1 || { tail -5 "$KAPT_DIR/update.log" >&2; die "apt-get update of the private lists failed"; }
    touch "$stamp"
  fi
}

# Maps a user's version (6.12, 6.1, 5.10, or a full ABI like 6.1.0-28) to the
# newest cloud kernel package the private lists know.
kapt_resolve() {
  local v="$1" flavour="${2:-cloud-amd64}" re
  case "$v" in
    *[!0-9.]*) re="^linux-image-${v//./\\.}-${flavour}\$" ;;                  # exact ABI: 6.1.0-28
    *.*.*)     re="^linux-image-${v//./\\.}[-+].*-${flavour}\$" ;;
    *)         re="^linux-image-${v//./\\.}\\.[0-9]+[-+].*-${flavour}\$" ;;
  esac
  kapt_cache search --names-only "$re" 2>/dev/null | awk '{print $1}' \
    | grep -v -e '-dbg$' -e 'unsigned' | sort -V | tail -1
}
