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
deb [arch=amd64 signed-by=$kr] $sec bullseye-security main
deb [arch=amd64 signed-by=$kr] $mirror trixie main
deb [arch=amd64 signed-by=$kr] $mirror trixie-backports main
deb [arch=amd64 signed-by=$kr] $sec trixie-security main
deb [arch=amd64 signed-by=$kr] $mirror sid main"
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

# kapt_kernels FLAVOUR: every kernel the private lists offer for a flavour
# (cloud-amd64, amd64: the ABI filter keeps rt-amd64 out of amd64), ABIs
# oldest first. From 6.19
# linux-image-* is a meta package (kernel in linux-binary-*, modules from 7.2
# in linux-modules-*); its name still carries the ABI, so one search serves.
kapt_kernels() {
  # apt-cache parses all nine sources' lists on each call (10-20 s on a
  # loaded host): the answer is kept beside the lists until they change.
  local flavour="$1" memo="$KAPT_DIR/kernels-$1"
  if [ -s "$memo" ] && [ "$memo" -nt "$KAPT_DIR/updated" ]; then cat "$memo"; return 0; fi
  kapt_search "$flavour" > "$memo.tmp" && mv "$memo.tmp" "$memo" && cat "$memo"
}
kapt_search() {
  local flavour="$1"
  kapt_cache search --names-only "^linux-image-[0-9].*-${flavour}\$" 2>/dev/null | awk '{print $1}' \
    | grep -v -e '-dbg$' -e unsigned | sed -E "s/^linux-image-//; s/-${flavour}\$//" \
    | grep -E '^[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+)?(\+[a-z0-9]+)?$' | sort -uV
}

# Maps a user's version (6.12, 6.1, 5.10, 7.3, or a full ABI like 6.1.0-28) to
# the newest linux-image package of that flavour the private lists know.
kapt_resolve() {
  local v="$1" flavour="${2:-cloud-amd64}" re e
  e=$(printf '%s' "$v" | sed 's/[.+]/\\&/g')  # 6.12.117+deb12 as a literal
  case "$v" in
    *[!0-9.]*) re="^$e\$" ;;                  # exact ABI: 6.1.0-56, 6.12.117+deb12
    *.*.*)     re="^${e}[-+]" ;;
    *)         re="^$e\\.[0-9]+[-+]" ;;
  esac
  kapt_kernels "$flavour" | { grep -E "$re" || true; } | tail -1 | sed -E "s/.*/linux-image-&-${flavour}/"
}

# kapt_nearest VERSION FLAVOUR: the series offered closest to VERSION (for the
# error naming what exists), e.g. 6.2 -> "6.1 6.12".
kapt_nearest() {
  local v="$1" flavour="$2"
  kapt_kernels "$flavour" | grep -oE '^[0-9]+\.[0-9]+' | sort -uV \
    | awk -v v="$v" 'BEGIN {split(v, w, "."); t = w[1] * 1000 + w[2]}
        {split($1, p, "."); d = p[1] * 1000 + p[2] - t; if (d < 0) d = -d; print d, $1}' \
    | sort -n | head -3 | awk '{print $2}' | sort -V | tr '\n' ' '
}

# kapt_parts IMAGE_PKG: the packages that hold the kernel and its modules:
# the image itself up to 6.18; from 6.19 the linux-binary-* and (7.2+)
# linux-modules-* it depends on (signed or unsigned, whichever is real).
kapt_parts() {
  local pkg="$1" dep real
  echo "$pkg"
  for dep in $(kapt_cache depends "$pkg" 2>/dev/null | awk '/Depends: linux-(binary|modules)-/ {print $2}' | sort -u); do
    real=$(kapt_cache show "$dep" 2>/dev/null | awk '/^Package:/ {print $2; exit}')
    [ -n "$real" ] || real=$(kapt_cache search --names-only "^${dep/linux-binary-/linux-binary-unsigned-}\$" | awk '{print $1; exit}')
    [ -n "$real" ] && echo "$real"
  done
}
