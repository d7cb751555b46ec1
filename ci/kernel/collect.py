#!/usr/bin/env python3
"""Turns one qemu run into the kernel's isocheck report.

The guest writes `===ISOCHECK-REPORT-BEGIN rc=N boot_s=B end_s=E===`, the JSON
report and `===ISOCHECK-REPORT-END===` on its second serial port, then ends
qemu through isa-debug-exit (qemu status (N << 1) | 1). Without a complete
report (timeout, panic, a guest that never reached init) the kernel's report
is one `kernel.boot` row with status `broken` and the console tail, so the
matrix and `isocheck diff` show the kernel as broken instead of silently
missing. Exit status: 0 when the guest's suite passed, 1 otherwise."""
import argparse
import json
import re
import sys

BEGIN = re.compile(r"===ISOCHECK-REPORT-BEGIN rc=(\d+) boot_s=([\d.]+) end_s=([\d.]+)===")
END = "===ISOCHECK-REPORT-END==="


def parse_channel(text):
    """(rc, boot_s, end_s, report) from the report channel, or None."""
    text = text.replace("\r", "")
    m = BEGIN.search(text)
    if not m:
        return None
    end = text.find(END, m.end())
    if end < 0:
        return None
    body = text[m.end():end].strip()
    try:
        report = json.loads(body) if body else None
    except json.JSONDecodeError:
        report = None
    return int(m.group(1)), float(m.group(2)), float(m.group(3)), report


def tail(text, n=40):
    lines = [l for l in text.replace("\r", "").splitlines() if l.strip()]
    return "\n".join(lines[-n:])


def broken_report(kernel, reason, console):
    return {
        "schema": 1,
        "host": {"kernel": kernel, "cgroup": None, "tools": {}, "docker": None},
        "run_id": "",
        "wall_ms": 0,
        "experiments": [{
            "id": "kernel.boot",
            "section": "kernel",
            "status": "broken",
            "reason": reason,
            "control": None,
            "observations": {"console_tail": tail(console)},
            "duration_ms": 0,
        }],
    }


def main():
    ap = argparse.ArgumentParser()
    for a in ("report-out", "console", "kernel", "source", "accel", "cgroup", "out"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--qemu-status", type=int, required=True)
    ap.add_argument("--timeout", type=int, required=True)
    ap.add_argument("--wall", type=float, required=True)
    a = ap.parse_args()
    with open(a.report_out, errors="replace") as f:
        channel = f.read()
    with open(a.console, errors="replace") as f:
        console = f.read()

    got = parse_channel(channel)
    booted = "ISOCHECK-BOOTED" in channel
    run = {"source": a.source, "accel": a.accel, "cgroup_mode": a.cgroup,
           "qemu_status": a.qemu_status, "qemu_wall_s": round(a.wall, 2)}
    if got and got[3] is not None:
        rc, boot_s, end_s, report = got
        run.update(boot_s=round(boot_s, 2), suite_s=round(end_s - boot_s, 2), guest_status=rc)
        ok = rc == 0
    else:
        if a.qemu_status == 124:
            reason = f"guest did not finish within {a.timeout} s (killed)"
        elif got:
            reason = f"the guest's report was not valid JSON (isocheck exit {got[0]})"
        elif booted:
            reason = f"the guest booted but sent no report (qemu status {a.qemu_status})"
        else:
            reason = f"the guest never reached its init (qemu status {a.qemu_status})"
        report = broken_report(a.kernel, reason, console)
        ok = False
        print(f"kernel-run: {a.kernel}: BROKEN: {reason}\n--- console tail ---\n{tail(console)}\n---",
              file=sys.stderr)
    report["kernel_run"] = run
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    # The guest's own table (it printed it on the console).
    lines = console.replace("\r", "").splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("isocheck: kernel")), None)
    if start is not None:
        print("\n".join(l for l in lines[start:] if not l.startswith("[")
                        and "isocheck-init" not in l).strip())
    counts = {}
    for e in report.get("experiments", []):
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    timing = (f"boot {run['boot_s']:.1f} s + suite {run['suite_s']:.1f} s, "
              if "boot_s" in run else "")
    print(f"kernel {a.kernel} [{a.accel}, cgroup {a.cgroup}]: {summary}; {timing}"
          f"qemu wall {run['qemu_wall_s']:.1f} s; report {a.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
