#!/usr/bin/env bash
# Seeds a fuzz target's corpus with the real inputs it parses, taken from the fixtures.
set -euo pipefail
target=$1
corpus=$2
root="$(dirname "$0")/../fixtures"
case "$target" in
  fuzz_safetensors) pattern='*.safetensors' ;;
  fuzz_model_config) pattern='config.json' ;;
  fuzz_tokenizer) pattern='tokenizer.json' ;;
  *) pattern='' ;;
esac
[ -n "$pattern" ] || exit 0
index=0
while IFS= read -r -d '' file; do
  # Large shards only slow libFuzzer down; their headers are what matters.
  if [ "$target" = fuzz_safetensors ]; then head -c 65536 "$file"; else cat "$file"; fi >"$corpus/seed-$index"
  index=$((index + 1))
done < <(find "$root" -name "$pattern" -print0)
