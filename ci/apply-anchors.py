#!/usr/bin/env python3
"""Writes fixtures/anchors.tsv into the registry: each `Experiment::new("<id>", ...)`
entry under src/experiments/ gets one `.anchor("...")` / `.cve("...")` call per
name in the file, all on one line right after its `.asserts(...)` (or at the
entry's end when it has none). Calls already there are replaced, so a rerun changes nothing and
a merge conflict in those lines is resolved by rerunning this on the merged
tree. Entries are found by their id string, so where a row sits and how its
builder chain is wrapped do not matter.

    ci/apply-anchors.py           rewrite the sources, list what changed
    ci/apply-anchors.py --check   change nothing; exit 1 if a rewrite is due
    ci/apply-anchors.py --root D  work on another checkout (or a copy)

Exit 1 also when an entry's id is missing from fixtures/anchors.tsv or an id
appears in two entries: the tsv must stay the one source.
"""
import argparse
import pathlib
import re
import sys

NEW = re.compile(r'Experiment::new\(\s*"([^"\\]+)"')


def load(tsv):
    table = {}
    for line in tsv.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 3:
            sys.exit(f"{tsv}: want 3 tab-separated fields, got {len(f)}: {line!r}")
        names = lambda s: [x for x in s.split("; ") if x]
        table[f[0]] = (names(f[1]), names(f[2]))
    return table


def skip_literal(text, i):
    """The index after the string, raw string, char literal or comment at i; i if none."""
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        return len(text) if j < 0 else j + 2
    m = re.match(r'r(#*)"', text[i:])
    if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
        end = '"' + m.group(1)
        j = text.find(end, i + len(m.group(0)))
        return len(text) if j < 0 else j + len(end)
    if text[i] == '"':
        j = i + 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        return j + 1
    if text[i] == "'":
        m = re.match(r"'(\\.|[^\\'])'", text[i:])
        if m:
            return i + len(m.group(0))
    return i


def entry_end(text, start):
    """Where the entry starting at `start` ends: the `,` or closing bracket at its depth."""
    depth, i = 0, start
    while i < len(text):
        j = skip_literal(text, i)
        if j != i:
            i = j
            continue
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return i
            depth -= 1
        elif c in ",;" and depth == 0:
            return i
        i += 1
    raise ValueError("unterminated entry")


def call_end(text, open_paren):
    """The index after the `)` closing the call whose `(` is at open_paren."""
    depth, i = 0, open_paren
    while i < len(text):
        j = skip_literal(text, i)
        if j != i:
            i = j
            continue
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unterminated call")


def top_level_calls(entry):
    """(name, start, end) of each `.name(...)` call of the builder chain."""
    calls, depth, i = [], 0, 0
    while i < len(entry):
        j = skip_literal(entry, i)
        if j != i:
            i = j
            continue
        c = entry[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "." and depth == 0:
            m = re.match(r"\.\s*([a-z_]+)\s*\(", entry[i:])
            if m:
                end = call_end(entry, i + len(m.group(0)) - 1)
                calls.append((m.group(1), i, end))
                i = end
                continue
        i += 1
    return calls


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rewrite_entry(entry, anchors, cves, indent):
    calls = top_level_calls(entry)
    # Drop the old calls with the whitespace before each, last first.
    for name, s, e in reversed([c for c in calls if c[0] in ("anchor", "cve")]):
        while s > 0 and entry[s - 1] in " \t\n":
            s -= 1
        entry = entry[:s] + entry[e:]
    calls = top_level_calls(entry)
    asserts = [c for c in calls if c[0] == "asserts"]
    at = asserts[0][2] if asserts else len(entry.rstrip())
    # One line per row, however many names: section files sit near the
    # 700-line limit of tests/shape.rs, and rustfmt leaves these entries as
    # written (their asserts strings are wider than it can fit).
    calls = [f".anchor({rust_str(a)})" for a in anchors] + [f".cve({rust_str(c)})" for c in cves]
    new = f"\n{indent}" + "".join(calls) if calls else ""
    return entry[:at] + new + entry[at:]


def chain_indent(text, start, entry):
    """The indentation of the chain's continuation lines (the entry's + 4 when none)."""
    m = re.search(r"\n([ \t]*)\.", entry)
    if m:
        return m.group(1)
    line_start = text.rfind("\n", 0, start) + 1
    base = re.match(r"[ \t]*", text[line_start:start]).group(0)
    return base + "    "


def apply(path, table, seen):
    text = path.read_text()
    out, pos, changed = [], 0, []
    for m in NEW.finditer(text):
        if m.start() < pos:
            continue
        ident = m.group(1)
        end = entry_end(text, m.start())
        entry = text[m.start():end]
        if ident not in table:
            sys.exit(f"{path}: {ident} has no line in fixtures/anchors.tsv; add one (empty fields for none)")
        if ident in seen:
            sys.exit(f"{path}: {ident} is also an entry in {seen[ident]}")
        seen[ident] = path
        anchors, cves = table[ident]
        new = rewrite_entry(entry, anchors, cves, chain_indent(text, m.start(), entry))
        if new != entry:
            changed.append(ident)
        out.append(text[pos:m.start()])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out), changed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a rewrite is due")
    ap.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parent.parent))
    args = ap.parse_args()
    root = pathlib.Path(args.root)
    table = load(root / "fixtures/anchors.tsv")
    seen, due = {}, []
    for path in sorted((root / "src/experiments").rglob("*.rs")):
        new, changed = apply(path, table, seen)
        if changed:
            due.append((path.relative_to(root), changed))
            if not args.check:
                path.write_text(new)
    for path, ids in due:
        print(f"{'stale' if args.check else 'rewrote'} {path}: {', '.join(ids)}")
    pending = len(set(table) - set(seen))
    print(f"apply-anchors: {len(seen)} entries, {sum(len(i) for _, i in due)} "
          f"{'stale' if args.check else 'rewritten'}; {pending} tsv ids have no entry (pending rows)")
    return 1 if args.check and due else 0


if __name__ == "__main__":
    sys.exit(main())
