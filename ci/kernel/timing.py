"""One kernel's timing line for kernel-matrix.sh's summary.

Usage: timing.py REPORT START END cold|cached
"""
import json
import sys


def main():
    report, start, end, temp = sys.argv[1:5]
    total = float(end) - float(start)
    try:
        with open(report) as f:
            k = json.load(f).get("kernel_run", {})
    except (OSError, ValueError):
        print(f"{total:.1f} s in total ({temp}), no report")
        return
    boot, suite, qemu = k.get("boot_s"), k.get("suite_s"), k.get("qemu_wall_s")
    print(
        f"{total:.1f} s in total ({temp}): prepare {total - (qemu or 0):.1f} s, "
        f"boot to suite {boot} s, suite {suite} s, qemu {qemu} s, accel {k.get('accel')}"
        f"{row_split(report)}"
    )


def row_split(report):
    """Where the suite's time went: the summed durations of the Docker rows
    (docker.*, esc.docker-*) against the others, and the slowest row."""
    try:
        with open(report) as f:
            rows = json.load(f).get("experiments", [])
    except (OSError, ValueError):
        return ""
    docker = [r for r in rows if r["id"].startswith(("docker.", "esc.docker"))]
    other = [r for r in rows if r not in docker]
    if not rows:
        return ""
    ms = lambda rs: sum(r.get("duration_ms", 0) for r in rs) / 1000
    top = max(rows, key=lambda r: r.get("duration_ms", 0))
    return (
        f"; row time summed over the jobs: {len(docker)} Docker rows {ms(docker):.0f} s, "
        f"{len(other)} others {ms(other):.0f} s, slowest {top['id']} {top['duration_ms'] / 1000:.0f} s"
    )


if __name__ == "__main__":
    main()
