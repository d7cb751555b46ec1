"""The modules to carry into the guest and the order to load them in.

Usage: modclosure.py MODDIR LISTFILE  (MODDIR: /lib/modules/<version> with
modules.dep; LISTFILE: ci/kernel/modules.list)
Prints `file PATH` for every module file to carry and `load NAME` for every
module to load, in order. Follows modules.dep and, as modprobe does,
modules.softdep (6.1 amd64: libcrc32c needs crc32c, provided by the
crc32c_generic module, else nf_tables never loads), resolving softdep names
through modules.alias. busybox's modprobe ignores softdeps, so those modules
are loaded explicitly, first.
"""
import os
import re
import sys


def mod_name(path):
    base = os.path.basename(path)
    return re.sub(r"\.ko(\..*)?$", "", base).replace("-", "_")


def read_lines(moddir, name):
    try:
        with open(os.path.join(moddir, name)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def parse(moddir):
    dep = {}
    for line in read_lines(moddir, "modules.dep"):
        if ":" in line:
            path, rest = line.split(":", 1)
            dep[mod_name(path)] = (path, [mod_name(d) for d in rest.split()])
    soft = {}
    for line in read_lines(moddir, "modules.softdep"):
        words = line.split()
        if len(words) > 2 and words[0] == "softdep":
            soft[words[1].replace("-", "_")] = [w for w in words[2:] if not w.endswith(":")]
    alias = {}
    for line in read_lines(moddir, "modules.alias"):
        words = line.split()
        if len(words) == 3 and words[0] == "alias":
            alias.setdefault(words[1], []).append(words[2].replace("-", "_"))
    return dep, soft, alias


def main():
    moddir, listfile = sys.argv[1:3]
    dep, soft, alias = parse(moddir)
    with open(listfile) as f:
        entries = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    names = [e for e in entries if not e.endswith("/")]
    dirs = ["kernel/" + e for e in entries if e.endswith("/")]
    todo = [n for n in names if n in dep]
    todo += [m for m, (p, _) in dep.items() if any(p.startswith(d) for d in dirs)]
    seen, softs = set(), []
    while todo:
        m = todo.pop()
        if m in seen or m not in dep:
            continue
        seen.add(m)
        todo.extend(dep[m][1])
        for s in soft.get(m, []):
            for target in [s] if s in dep else alias.get(s, []):
                if target in dep and target not in softs:
                    softs.append(target)
                    todo.append(target)
    for m in sorted(seen):
        print("file", dep[m][0])
    for m in softs + [n for n in names if n in dep and n not in softs]:
        print("load", m)


if __name__ == "__main__":
    main()
