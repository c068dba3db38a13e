#!/usr/bin/env bash
# Code-shape metrics (not a test): production code only (each crate's src/, every file cut at
# its first `#[cfg(test)]`, `tests.rs` and `*_fuzz.rs` left out), measured in a temporary copy:
# files and lines, the largest files, coordinator/src's top-level entries, file-level import
# cycles per crate, and the `duplicates` tool's pairs when it is installed.
#
#   deploy/local/code_metrics.sh [REPO]      # default: this checkout
set -euo pipefail
repo=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$repo"
git ls-files -co --exclude-standard '*.rs' | grep -E '^[a-z_]+/src/' |
    grep -vE '(^|/)tests(/|\.rs$)|_fuzz\.rs$' | while read -r f; do
    mkdir -p "$out/$(dirname "$f")"
    awk '/^#\[cfg\(test\)\]/ { exit } { print }' "$f" >"$out/$f"
done
echo "production code: $(find "$out" -name '*.rs' | wc -l) files, $(find "$out" -name '*.rs' -exec cat {} + | wc -l) lines"
echo "largest files:"
find "$out" -name '*.rs' -exec wc -l {} + | grep -v ' total$' | sort -n | tail -5 | sed "s|$out/|  |"
echo "coordinator/src top-level entries: $(find "$repo/coordinator/src" -mindepth 1 -maxdepth 1 | wc -l)"
for crate in "$out"/*/src; do
    python3 "$here/import_cycles.py" "$crate" | sed "s|$out/||"
done
if command -v duplicates >/dev/null; then
    (cd "$out" && git init -q && git add -A)
    duplicates --repo "$out" --most 200 --seconds 120 >"$out/dups.txt" || true
    head -1 "$out/dups.txt"
    awk '/^D[0-9]+ / { split($2, a, ":"); split(a[2], r, "-"); n += r[2] - r[1] + 1; p++; if ($0 ~ /boilerplate/) b++ }
         END { printf "pairs: %d (%d marked boilerplate), lines in their first side: %d\n", p, b, n }' "$out/dups.txt"
else
    echo "duplicates: not installed, pairs not counted"
fi
