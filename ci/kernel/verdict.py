#!/usr/bin/env python3
"""One guest report as `git bisect run` reads an exit status.

0: every row passed, or was ignored for a reason outside the kernel (no
Docker engine, a missing tool); 1: a row failed, so this kernel is bad;
125: this kernel cannot be judged: it did not boot or report (the lone
`kernel.boot` row), a row broke, a row is not configured in this kernel
(`not configured: CONFIG_X is not set`, or ns.lsns-types' "this kernel is
built without the … namespace") or needs a newer one. Rows all
ignored outside the kernel give 0 as the contract says, with a warning:
such a run tests nothing.
A failed row outweighs a broken or unconfigured one: that kernel is bad
whatever else it lacks.

Usage: verdict.py REPORT.json  (prints one line saying why)"""
import json
import sys

# Ignored for a reason that is the kernel's: such a commit cannot say good.
KERNEL_REASONS = ("not configured:", "needs kernel >=", "this kernel is built without")


def verdict(report):
    """(exit status, why) of one report dict."""
    rows = report.get("experiments") or []
    if any(r.get("id") == "kernel.boot" for r in rows):
        boot = next(r for r in rows if r.get("id") == "kernel.boot")
        return 125, f"no report from the guest: {boot.get('reason')}"
    failed = [r["id"] for r in rows if r.get("status") == "failed"]
    if failed:
        return 1, "failed: " + " ".join(failed)
    broken = [r["id"] for r in rows if r.get("status") == "broken"]
    if broken:
        return 125, "broken (cannot tell): " + " ".join(broken)
    kernel = [f"{r['id']} ({r.get('reason')})" for r in rows
              if r.get("status") == "ignored" and str(r.get("reason") or "").startswith(KERNEL_REASONS)]
    if kernel:
        return 125, "not testable on this kernel: " + "; ".join(kernel)
    passed = [r["id"] for r in rows if r.get("status") == "passed"]
    if not passed:
        return 0, "WARNING: no selected row ran (all ignored for reasons outside the kernel): good by default"
    return 0, f"good: {len(passed)} passed, {len(rows) - len(passed)} ignored outside the kernel"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            report = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"bisect: no readable report: {e}", file=sys.stderr)
        return 125
    code, why = verdict(report)
    print(f"bisect: exit {code}: {why}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
