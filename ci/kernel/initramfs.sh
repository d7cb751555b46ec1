# Sourced by ci/kernel-run.sh: builds the guest's initramfs tree.

# copy_tree_path SRC STAGE: copies SRC to STAGE/SRC keeping every symlink of
# the way (iptables -> /etc/alternatives/iptables -> xtables-nft-multi: the
# multi-call binaries dispatch on argv[0], so the names must survive).
copy_path() {
  local src="$1" stage="$2" hops=0 link dir
  while [ -L "$src" ] && [ $hops -lt 16 ]; do
    mkdir -p "$stage$(dirname "$src")"
    [ -e "$stage$src" ] || [ -L "$stage$src" ] || cp -P "$src" "$stage$src"
    link=$(readlink "$src")
    dir=$(dirname "$src")
    case "$link" in /*) src="$link" ;; *) src="$dir/$link" ;; esac
    hops=$((hops + 1))
  done
  [ -e "$src" ] || return 1
  mkdir -p "$stage$(dirname "$src")"
  [ -e "$stage$src" ] || cp -L "$src" "$stage$src"
  printf '%s\n' "$src"
}

# copy_libs FILE STAGE: the shared libraries FILE needs (its ldd closure: ldd
# already resolves transitively) and the dynamic loader.
copy_libs() {
  local f="$1" stage="$2" lib
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    copy_path "$lib" "$stage" >/dev/null || true
  done
}

# copy_bin NAME STAGE: a host command plus its libraries; returns 1 when the
# host lacks it (the experiments that need it are then ignored in the guest).
copy_bin() {
  local name="$1" stage="$2" path real
  path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin type -P "$name") || return 1
  # Merged /usr: /sbin/x and /usr/sbin/x are one file; keep the /usr path.
  case "$path" in /bin/*|/sbin/*) [ -e "/usr$path" ] && path="/usr$path" ;; esac
  real=$(copy_path "$path" "$stage") || return 1
  copy_libs "$real" "$stage"
}

# The commands the experiments run (src/needs.rs Tool), minus gcc, docker and
# qemu which the guest cannot use; busybox provides the rest of the shell's
# world from /opt/busybox/bin, later on PATH than the real tools.
GUEST_TOOLS="ip iptables iptables-save iptables-restore ip6tables iptables-legacy iptables-nft nft ping
  unshare nsenter lsns findmnt mount umount ps ipcs hostname cgcreate cgexec cgdelete cgset cgget
  tar kmod modprobe insmod lsmod setpriv prlimit chroot pivot_root switch_root nproc timeout
  stat mountpoint bash sleep cat true false env kill pgrep pkill"

# build_initramfs STAGE OUT KVER MODSRC ISOCHECK_BIN DEBUG_EXIT CONF
build_initramfs() {
  local stage="$1" out="$2" kver="$3" modsrc="$4" bin="$5" dbgexit="$6" conf="$7"
  rm -rf "$stage"; mkdir -p "$stage"
  local d
  for d in usr/bin usr/sbin usr/lib usr/lib64 etc/isocheck proc sys dev run tmp root opt/busybox/bin var; do
    mkdir -p "$stage/$d"
  done
  chmod 1777 "$stage/tmp"
  # Merged /usr like Debian 12, so host paths from ldd land where they are looked up.
  ln -s usr/bin "$stage/bin"; ln -s usr/sbin "$stage/sbin"
  ln -s usr/lib "$stage/lib"; ln -s usr/lib64 "$stage/lib64"
  ln -s ../run "$stage/var/run"
  mknod -m 600 "$stage/dev/console" c 5 1
  mknod -m 666 "$stage/dev/null" c 1 3

  local bb; bb=$(command -v busybox) || die "busybox missing: apt-get install busybox-static"
  case "$(ldd "$bb" 2>&1 || true)" in *"not a dynamic"*) ;; *) die "$bb is not static: apt-get install busybox-static" ;; esac
  cp "$bb" "$stage/usr/bin/busybox"
  local a
  for a in $("$bb" --list); do ln -sf ../../../usr/bin/busybox "$stage/opt/busybox/bin/$a"; done
  ln -sf busybox "$stage/usr/bin/sh"

  local missing=() t
  for t in $GUEST_TOOLS; do copy_bin "$t" "$stage" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] || log "not on this host, so not in the guest: ${missing[*]}"
  # dlopen()ed, so not in ldd: iptables' match/target extensions.
  local xt
  for xt in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/xtables; do
    if [ -d "$xt" ]; then
      mkdir -p "$stage$xt"; cp -a "$xt/." "$stage$xt/"
      for f in "$xt"/*.so; do copy_libs "$f" "$stage"; done
    fi
  done
  for f in /etc/protocols /etc/services /etc/ethertypes /etc/iproute2 /etc/netconfig /etc/alternatives/iptables*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    mkdir -p "$stage$(dirname "$f")"; cp -a "$f" "$stage$(dirname "$f")/" 2>/dev/null || true
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files\n' > "$stage/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n' > "$stage/etc/hosts"
  : > "$stage/etc/fstab"
  [ -e "$stage/etc/mtab" ] || ln -s ../proc/self/mounts "$stage/etc/mtab"

  # The suite. Stripped: debug info only makes the initramfs bigger.
  cp "$bin" "$stage/usr/bin/isocheck"
  strip "$stage/usr/bin/isocheck" 2>/dev/null || true
  copy_libs "$bin" "$stage"
  cp "$dbgexit" "$stage/usr/bin/debug-exit"
  cp "$HERE/kernel/init" "$stage/init"
  cp "$HERE/kernel/isocheck-init" "$stage/usr/sbin/isocheck-init"
  cp "$conf" "$stage/etc/isocheck/guest.conf"

  # Modules: the wanted ones plus their dependencies, decompressed (busybox
  # and older kmod cannot read .ko.xz/.ko.zst; the 6.12 package ships .ko.xz).
  if [ -n "$modsrc" ] && [ -d "$modsrc" ]; then
    local mroot="$stage/lib/modules/$kver" names=() m files
    mkdir -p "$mroot"
    for f in modules.order modules.builtin modules.builtin.modinfo; do
      [ -f "$modsrc/$f" ] && cp "$modsrc/$f" "$mroot/"
    done
    names=($(grep -v '^#' "$HERE/kernel/modules.list"))
    [ -f "$modsrc/modules.dep" ] || die "$modsrc has no modules.dep: run depmod -b on it first"
    files=$(for m in "${names[@]}"; do
      awk -v m="$m" -F: '{n=$1; sub(/.*\//,"",n); sub(/\.ko.*/,"",n); gsub("-","_",n)} n==m {print $1; print $2}' "$modsrc/modules.dep"
    done | tr ' ' '\n' | grep . | sort -u)
    local loaded=()
    for f in $files; do
      mkdir -p "$mroot/$(dirname "$f")"
      case "$f" in
        *.xz) xz -dc "$modsrc/$f" > "$mroot/${f%.xz}" ;;
        *.zst) zstd -dcq "$modsrc/$f" > "$mroot/${f%.zst}" ;;
        *.gz) gzip -dc "$modsrc/$f" > "$mroot/${f%.gz}" ;;
        *) cp "$modsrc/$f" "$mroot/$f" ;;
      esac
    done
    # modules.order lists .ko paths: keep it consistent with the decompressed names.
    [ -f "$mroot/modules.order" ] && sed -i -E 's/\.ko\.(xz|zst|gz)$/.ko/' "$mroot/modules.order"
    depmod -b "$stage" "$kver" || die "depmod -b failed"
    for m in "${names[@]}"; do
      grep -qE "(^|/)${m//_/[_-]}\.ko:" "$mroot/modules.dep" && loaded+=("$m")
    done
    printf '%s\n' "${loaded[@]}" > "$stage/etc/isocheck/modules"
    log "modules: ${#loaded[@]} of ${#names[@]} wanted ($(echo "$files" | wc -w) files with dependencies)"
  fi

  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) > "$out"
}
