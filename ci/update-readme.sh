#!/usr/bin/env bash
# Regenerates what is derived from the registry and the catalogue:
# fixtures/catalogue-ids.txt (the id column of ../shared/spec/catalogue.md,
# when that checkout is present), README.md's table of experiments and
# docs/coverage.md (the upstream suites' tests each row follows) and
# ci/kernel/isocheck.config (the rows' kconfig needs and src/kconfig.rs's BOOT).
# `cargo test --test registry` and `--test coverage` fail, naming this
# script, when one is stale. Run ci/apply-anchors.py first when
# fixtures/anchors.tsv changed: the map is read from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=../shared/spec/catalogue.md
if [[ -f $spec ]]; then
  { echo "# Every experiment id of ../shared/spec/catalogue.md, one per line (the contract)."
    sed -nE 's/^\| ([a-z0-9-]+\.[a-z0-9-]+) \|.*/\1/p' "$spec"
  } > fixtures/catalogue-ids.txt
else
  echo "update-readme: $spec absent; fixtures/catalogue-ids.txt left as it is" >&2
fi
cargo build --quiet
target/debug/isocheck list --kconfig > ci/kernel/isocheck.config
table=$(target/debug/isocheck list --markdown)
target/debug/isocheck list --coverage > docs/coverage.md
python3 - "$table" <<'PY'
import sys, re
table = sys.argv[1]
text = open("README.md").read()
new = re.sub(r"(<!-- experiments:begin -->\n).*?(<!-- experiments:end -->)",
             lambda m: m.group(1) + table.strip("\n") + "\n" + m.group(2), text, flags=re.S)
open("README.md", "w").write(new)
PY
