"""Symlinks that put the tools image's files at their host paths in the guest.

stdin: the base archive's paths (`cpio -t`); argv: STAGE MOUNTPOINT OUT.
Each path of STAGE becomes OUT/<path> -> MOUNTPOINT/<path> at the highest
directory level the base lacks, so a tree the base does not have (such as
/usr/include) is one link and a library beside the base's libraries one each.
A path the base already holds is left to the base (same host file).
"""
import os
import sys


def main():
    stage, mountpoint, out = sys.argv[1:4]
    base = {p.strip().lstrip("./").rstrip("/") for p in sys.stdin if p.strip()}
    base_dirs = {"/".join(p.split("/")[:i]) for p in base for i in range(1, p.count("/") + 1)}
    for dirpath, dirnames, filenames in os.walk(stage):
        rel_dir = os.path.relpath(dirpath, stage)
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for name in sorted(dirnames) + sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if name in dirnames and not os.path.islink(os.path.join(dirpath, name)) and (
                rel in base_dirs or rel in base
            ):
                keep.append(name)  # the base has this directory: descend
                continue
            if rel in base:
                continue
            link = os.path.join(out, rel)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(f"{mountpoint}/{rel}", link)
        dirnames[:] = [d for d in dirnames if d in keep]


if __name__ == "__main__":
    main()
