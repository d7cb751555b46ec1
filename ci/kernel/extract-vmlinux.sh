#!/usr/bin/env bash
# extract-vmlinux BZIMAGE OUT: writes the uncompressed ELF kernel inside a
# bzImage to OUT. Same idea as the kernel's scripts/extract-vmlinux: find each
# compression format's magic in the image, decompress from that offset, and
# keep the first result that is an ELF file. Booting the ELF (qemu -kernel
# accepts it, PVH entry) skips the in-guest decompression, which under TCG
# costs seconds per boot.
set -euo pipefail
export LC_ALL=C

img="${1:?usage: extract-vmlinux BZIMAGE OUT}"
out="${2:?usage: extract-vmlinux BZIMAGE OUT}"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

# try MAGIC_REGEX DECOMPRESSOR...: decompress from every offset where the magic
# occurs (a magic can also occur by chance; the ELF check rejects those).
try() {
  local magic="$1"; shift
  command -v "$1" >/dev/null || return 1
  local pos
  for pos in $(grep -obUaP "$magic" "$img" 2>/dev/null | cut -d: -f1); do
    # Decompressors complain about trailing garbage after the payload: the
    # ELF check decides, not their exit status.
    tail -c +"$((pos + 1))" "$img" | "$@" > "$tmp" 2>/dev/null || true
    if is_elf "$tmp"; then
      mv "$tmp" "$out"
      return 0
    fi
  done
  return 1
}

is_elf "$img" && { cp "$img" "$out"; exit 0; }
try '\x1f\x8b\x08'                 gunzip -c ||
try '\xfd\x37\x7a\x58\x5a\x00'     xz -dc ||
try '\x28\xb5\x2f\xfd'             zstd -dcq ||
try 'BZh'                          bunzip2 -c ||
try '\x5d\x00\x00\x00'             unlzma -c ||
try '\x89\x4c\x5a\x4f'             lzop -dc ||
try '\x02\x21\x4c\x18'             lz4 -dc ||
{ echo "extract-vmlinux: no compressed ELF kernel found in $img" >&2; exit 1; }
