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
    )


if __name__ == "__main__":
    main()
