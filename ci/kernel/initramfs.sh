# shellcheck shell=bash
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

# copy_libs STAGE FILE...: the shared libraries the FILEs need (their ldd
# closure: ldd already resolves transitively) and the dynamic loader. One ldd
# for all files: a call per file made the build 10 s slower.
copy_libs() {
  local stage="$1" lib; shift
  for lib in $(ldd "$@" 2>/dev/null | grep -v ':$' | grep -o '/[^ ]*' | sort -u); do
    copy_path "$lib" "$stage" >/dev/null || true
  done
}

# copy_bin NAME STAGE: a host command (its libraries come from copy_libs on the
# printed real path); returns 1 when the host lacks it (the experiments that
# need it are then ignored in the guest).
copy_bin() {
  local name="$1" stage="$2" path
  path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin type -P "$name") || return 1
  # Merged /usr: /sbin/x and /usr/sbin/x are one file; keep the /usr path.
  case "$path" in /bin/*|/sbin/*) [ -e "/usr$path" ] && path="/usr$path" ;; esac
  copy_path "$path" "$stage"
}

# The commands the experiments run (src/needs.rs Tool), minus gcc, docker and
# qemu which the guest cannot use, plus the host's coreutils: busybox's differ
# in ways experiments trip over (its `ls /proc` fails when a process exits
# mid-listing; coreutils' does not stat). Busybox provides the rest from
# /opt/busybox/bin, later on PATH than the real tools.
GUEST_TOOLS="ip iptables iptables-save iptables-restore ip6tables iptables-legacy iptables-nft nft ping
  unshare nsenter lsns findmnt mount umount ps ipcs hostname cgcreate cgexec cgdelete cgset cgget
  tar setpriv prlimit chroot pivot_root switch_root nproc timeout
  stat mountpoint dash bash sleep cat true false env kill pgrep pkill
  ls cp mv rm mkdir rmdir ln chmod chown touch readlink realpath basename dirname echo printf
  head tail grep sed mawk awk sort uniq wc cut tr tee id whoami seq yes test find xargs date
  uname df du dd mktemp sync nice nohup"

# mkcpio DIR OUT: a newc archive of DIR. The kernel unpacks concatenated
# archives in order, so the guest is base (host tools, cached) + modules
# (cached per kernel) + suite (rebuilt every run): only the last costs time.
mkcpio() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) > "$2.tmp"
  mv "$2.tmp" "$2"
}

stage_skeleton() {
  local stage="$1" d
  rm -rf "$stage"; mkdir -p "$stage"
  for d in usr/bin usr/sbin usr/lib usr/lib64 etc/isocheck proc sys dev run tmp root opt/busybox/bin var; do
    mkdir -p "$stage/$d"
  done
  chmod 1777 "$stage/tmp"
  # Merged /usr like Debian 12, so host paths from ldd land where they are looked up.
  ln -s usr/bin "$stage/bin"; ln -s usr/sbin "$stage/sbin"
  ln -s usr/lib "$stage/lib"; ln -s usr/lib64 "$stage/lib64"
  ln -s ../run "$stage/var/run"
}

# build_base OUT: busybox, the host's tools with their libraries, /etc basics.
# Cached until the host's packages or this file change.
build_base() {
  local out="$1" key stage="$1.d"
  key="$(cat "$HERE/kernel/initramfs.sh" /var/lib/dpkg/status 2>/dev/null | md5sum | cut -c1-16)"
  if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then return 0; fi
  stage_skeleton "$stage"
  mknod -m 600 "$stage/dev/console" c 5 1
  mknod -m 666 "$stage/dev/null" c 1 3

  local bb; bb=$(command -v busybox) || die "busybox missing: apt-get install busybox-static"
  case "$(ldd "$bb" 2>&1 || true)" in *"not a dynamic"*) ;; *) die "$bb is not static: apt-get install busybox-static" ;; esac
  cp "$bb" "$stage/usr/bin/busybox"
  local a
  for a in $("$bb" --list); do ln -sf ../../../usr/bin/busybox "$stage/opt/busybox/bin/$a"; done
  # The kernel's request_module runs /sbin/modprobe (iptables-nft relies on
  # it: nft_counter is a module on 5.10). busybox's reads the modules.dep
  # that depmod -b writes.
  for a in modprobe insmod rmmod lsmod; do ln -sf ../bin/busybox "$stage/usr/sbin/$a"; done

  local missing=() t r reals=()
  for t in $GUEST_TOOLS; do
    if r=$(copy_bin "$t" "$stage"); then reals+=("$r"); else missing+=("$t"); fi
  done
  # Every iptables flavour and its save/restore twins (experiments compare
  # legacy and nft tables before and after).
  for t in /usr/sbin/*tables* /usr/sbin/xtables-*; do
    [ -e "$t" ] || continue
    r=$(copy_path "$t" "$stage") && reals+=("$r")
  done
  [ ${#missing[@]} -eq 0 ] || log "not on this host, so not in the guest: ${missing[*]}"
  # dlopen()ed, so not in ldd: iptables' match/target extensions.
  local xt
  for xt in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/xtables; do
    if [ -d "$xt" ]; then
      mkdir -p "$stage$xt"; cp -a "$xt/." "$stage$xt/"
      reals+=("$xt"/*.so)
    fi
  done
  copy_libs "$stage" "${reals[@]}"
  # sh is the host's dash, not busybox: Debian's busybox sh runs its own
  # applets before PATH, so `sh -c "ip ..."` in an experiment would get
  # busybox's ip instead of iproute2.
  if [ -x "$stage/usr/bin/dash" ]; then ln -sf dash "$stage/usr/bin/sh"; else ln -sf busybox "$stage/usr/bin/sh"; fi
  for f in /etc/protocols /etc/services /etc/ethertypes /etc/iproute2 /etc/netconfig /etc/alternatives/iptables*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    mkdir -p "$stage$(dirname "$f")"; cp -a "$f" "$stage$(dirname "$f")/" 2>/dev/null || true
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files\n' > "$stage/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n' > "$stage/etc/hosts"
  : > "$stage/etc/fstab"
  ln -s ../proc/self/mounts "$stage/etc/mtab"
  mkcpio "$stage" "$out"
  rm -rf "$stage"
  echo "$key" > "$out.key"
}

# build_modules KVER MODSRC OUT: the wanted modules plus their dependencies,
# decompressed (busybox modprobe cannot read .ko.xz/.ko.zst; the 6.12 package
# ships .ko.xz), with their own modules.dep from `depmod -b`.
build_modules() {
  local kver="$1" modsrc="$2" out="$3" stage="$3.d" key
  key="$(cat "$HERE/kernel/modules.list" "$HERE/kernel/modclosure.py" "$modsrc/modules.dep" | md5sum | cut -c1-16)"
  if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then return 0; fi
  stage_skeleton "$stage"
  local mroot="$stage/lib/modules/$kver" names=() m f d files loaded=()
  mkdir -p "$mroot"
  for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "$modsrc/$f" ] && cp "$modsrc/$f" "$mroot/"
  done
  local plan
  plan=$(python3 "$HERE/kernel/modclosure.py" "$modsrc" "$HERE/kernel/modules.list") || die "modclosure.py failed"
  mapfile -t names < <(echo "$plan" | awk '$1 == "load" {print $2}')
  files=$(echo "$plan" | awk '$1 == "file" {print $2}')
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
  log "modules for $kver: ${#loaded[@]} of ${#names[@]} wanted ($(echo "$files" | wc -w) files with dependencies)"
  mkcpio "$stage" "$out"
  rm -rf "$stage"
  echo "$key" > "$out.key"
}

# build_suite OUT ISOCHECK_BIN DEBUG_EXIT CONF EXEC: what changes every run.
build_suite() {
  local out="$1" bin="$2" dbgexit="$3" conf="$4" exec="$5" stage="$1.d"
  stage_skeleton "$stage"
  # Stripped: debug info only makes the initramfs bigger.
  cp "$bin" "$stage/usr/bin/isocheck"
  strip "$stage/usr/bin/isocheck" 2>/dev/null || true
  copy_libs "$stage" "$bin"
  cp "$dbgexit" "$stage/usr/bin/debug-exit"
  cp "$HERE/kernel/init" "$stage/init"
  cp "$HERE/kernel/isocheck-init" "$stage/usr/sbin/isocheck-init"
  cp "$conf" "$stage/etc/isocheck/guest.conf"
  cp "$exec" "$stage/etc/isocheck/exec.sh"
  mkcpio "$stage" "$out"
  rm -rf "$stage"
}

# The Docker engine and a C compiler with libseccomp's headers, as the host
# has them (the docker.* and the two gcc rows run in the guest too). Whole
# packages minus documentation and the LTO compiler (32 MB each for lto1 and
# lto-dump, unused by a plain `gcc -o x x.c -lseccomp`). apparmor: Debian's
# kernels enable AppArmor, and dockerd then refuses to run a container
# without apparmor_parser to load its docker-default profile.
TOOL_PACKAGES="docker.io containerd runc tini apparmor gcc gcc-12 cpp cpp-12 binutils
  binutils-x86-64-linux-gnu libbinutils libctf0 libctf-nobfd0 libgcc-12-dev libc6-dev
  linux-libc-dev libcrypt-dev libseccomp-dev"
TOOL_SKIP='^/usr/share/[^a]|^/usr/share/a[^p]|^/etc/[^a]|^/etc/a[^p]|^/lib/systemd/|^/usr/lib/systemd/|/lto1$|lto-dump|/containerd-stress$|/ctr$|/containerd-shim(-runc-v1)?$|/docker-proxy$|/sbin/dockerd-rootless'

# tool_files: the host paths of TOOL_PACKAGES' files worth carrying; prints
# nothing for packages the host lacks (their rows stay ignored, with the reason).
tool_files() {
  local p
  for p in $TOOL_PACKAGES; do dpkg -L "$p" 2>/dev/null || true; done \
    | grep -vE "$TOOL_SKIP" | sort -u
}

# build_tools IMG LINKS BASE: the tools stage as an ext4 image (IMG, a
# read-only virtio disk the guest mounts at /opt/tools) and a cpio of symlinks
# (LINKS) that puts each of its paths where the host has it, at the highest
# directory the base archive lacks (/usr/include is one link, a library in
# /usr/lib/x86_64-linux-gnu one each). A disk is read on demand: the 330 MB
# as a cpio cost ~10 s of unpacking per TCG boot and as much guest RAM.
# Cached like base.
build_tools() {
  local img="$1" links="$2" base="$3" stage="$1.d" key f reals=() mib
  key="$(cat "$HERE/kernel/initramfs.sh" "$HERE/kernel/toollinks.py" /var/lib/dpkg/status "$base.key" 2>/dev/null | md5sum | cut -c1-16)"
  if [ -f "$img" ] && [ -f "$links" ] && [ "$(cat "$img.key" 2>/dev/null)" = "$key" ]; then return 0; fi
  stage_skeleton "$stage"
  while read -r f; do
    case "$f" in /bin/*|/sbin/*|/lib/*|/lib64/*) [ -e "/usr$f" ] && f="/usr$f" ;; esac
    if [ -L "$f" ]; then copy_path "$f" "$stage" >/dev/null 2>&1 || true
    elif [ -f "$f" ]; then
      mkdir -p "$stage$(dirname "$f")"; cp -a "$f" "$stage$f"
      [ -x "$f" ] && reals+=("$f")
    elif [ -d "$f" ]; then
      mkdir -p "$stage$f"  # empty ones too: apparmor_parser includes tunables/*.d
    fi
  done < <(tool_files)
  [ ${#reals[@]} -gt 0 ] && copy_libs "$stage" "${reals[@]}"
  mib=$(du -sm "$stage" | cut -f1)
  rm -f "$img.tmp"
  mkfs.ext4 -q -F -L isocheck-tools -O ^has_journal -E root_owner=0:0 -d "$stage" "$img.tmp" "$((mib * 11 / 10 + 16))M" \
    || die "mkfs.ext4 -d failed (needs e2fsprogs >= 1.43)"
  mv "$img.tmp" "$img"
  local ls="$links.d"; rm -rf "$ls"; mkdir -p "$ls"
  busybox cpio -t < "$base" 2>/dev/null | python3 "$HERE/kernel/toollinks.py" "$stage" /opt/tools "$ls"
  mkcpio "$ls" "$links"
  log "tools image (Docker engine, gcc): $mib MiB, $(find "$ls" -type l | wc -l) links"
  rm -rf "$stage" "$ls"
  echo "$key" > "$img.key"
}
