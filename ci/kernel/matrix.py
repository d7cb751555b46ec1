#!/usr/bin/env python3
"""matrix.py LABEL=REPORT.json...: one table, experiments as rows, kernels as
columns; a cell is the status, with `*` when the experiment's observations
differ from the first kernel's (the details come from `isocheck diff`)."""
import json
import sys

WORD = {"passed": "pass", "failed": "FAIL", "ignored": "ign", "broken": "BROKEN"}


def load(arg):
    label, _, path = arg.partition("=")
    with open(path) as f:
        rep = json.load(f)
    rows = {e["id"]: e for e in rep.get("experiments", [])}
    return label, rep, rows


def table(cols):
    ids = sorted({i for _, _, rows in cols for i in rows})
    base = cols[0][2]
    head = ["experiment"] + [label for label, _, _ in cols]
    lines = []
    for i in ids:
        cells = [i]
        for _, _, rows in cols:
            e = rows.get(i)
            if e is None:
                cells.append("-")
                continue
            c = WORD.get(e["status"], e["status"])
            b = base.get(i)
            if b is not None and b.get("observations") != e.get("observations") and rows is not base:
                c += "*"
            cells.append(c)
        lines.append(cells)
    # Footer: kernel release, cgroup layout and timing per column.
    foot = [["kernel"], ["cgroup"], ["boot+suite s"]]
    for _, rep, _ in cols:
        host = rep.get("host", {})
        run = rep.get("kernel_run", {})
        foot[0].append(host.get("kernel", "?"))
        cg = host.get("cgroup") or {}
        foot[1].append(cg.get("layout", "?") if isinstance(cg, dict) else "?")
        if "boot_s" in run:
            foot[2].append(f"{run['boot_s']:.1f}+{run['suite_s']:.1f}")
        else:
            foot[2].append("-")
    widths = [max(len(r[k]) for r in [head] + lines + foot) for k in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    out = [fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(r) for r in lines]
    out.append(fmt(["-" * w for w in widths]))
    out += [fmt(r) for r in foot]
    return "\n".join(out)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cols = [load(a) for a in argv]
    print(table(cols))
    print("(* = observations differ from the first column; see the diffs below)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
