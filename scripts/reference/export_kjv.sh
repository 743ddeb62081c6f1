#!/usr/bin/env bash
# Export the King James Bible (public domain) from Debian's bible-kjv package
# as clean training text: one line per chapter heading ("Genesis 1") and one
# line per verse, verse numbers dropped, wrapped lines joined.
#
# Usage: scripts/reference/export_kjv.sh [OUTPUT]   (default .device-carry/kjv.txt)
# Needs: apt-get install bible-kjv
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.device-carry/kjv.txt}"
mkdir -p "$(dirname "$out")"
command -v bible >/dev/null || { echo "bible-kjv is not installed (apt-get install bible-kjv)" >&2; exit 1; }

bible "gen1:1-rev22:21" | awk '
  function flush() { if (cur != "") { print cur; cur = "" } }
  /^$/                 { flush(); blank = 1; next }
  /^ +[0-9]+ /         { flush(); sub(/^ +[0-9]+ /, ""); cur = $0; blank = 0; next }
  blank                { flush(); print; blank = 0; next }   # chapter heading
                       { cur = cur " " $0 }                  # continuation line
  END                  { flush() }
' | sed -e 's/[[:space:]]\+$//' -e 's/  \+/ /g' > "$out"

lines=$(wc -l < "$out"); bytes=$(wc -c < "$out")
echo "wrote $out: $lines lines, $bytes bytes" >&2
# Sanity: 1189 chapters + 31102 verses in the KJV
[ "$lines" -eq 32291 ] || echo "warning: expected 32291 lines (1189 headings + 31102 verses), got $lines" >&2
