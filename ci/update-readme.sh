#!/usr/bin/env bash
# Regenerates README.md's table of experiments from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
table=$(target/debug/isocheck list --markdown)
python3 - "$table" <<'PY'
import sys, re
table = sys.argv[1]
text = open("README.md").read()
new = re.sub(r"(<!-- experiments:begin -->\n).*?(<!-- experiments:end -->)",
             lambda m: m.group(1) + table.strip("\n") + "\n" + m.group(2), text, flags=re.S)
open("README.md", "w").write(new)
PY
