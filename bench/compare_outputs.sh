#!/usr/bin/env bash
# Greedy outputs of two builds on every fixture model, on the GPU (a refactor must not change a
# token): the carried binary (after) against .device-carry-before/shardlm-before (before, kept by
# bench/save_before_build.sh), on one GPU (one prompt, and batches that take the GEMV and the GEMM decode paths),
# device maps with a layer and the head offloaded under every --offload-exec, a layer on disk, and
# the embedding on the host (two-GPU maps run on one device are test_cuda_device_map's). Prints one
# line per case to $OUT/outputs.txt and exits 1 if any case differs or fails.
source "$(dirname "$0")/device_session_env.sh"
mkdir -p "$out/outputs"
after=$bin/shardlm
before=$root/.device-carry-before/shardlm-before
[ -x "$before" ] || { gunzip -c "$before.gz" >"$before" && chmod +x "$before"; } || exit 1
long="In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep."
# A device map for this model: its embedding, last layers (all but the first) and head go where
# KIND says; a tied head follows the embedding.
device_map() {
  python3 - "$1" "$2" <<'PY'
import json, sys
config = json.load(open(sys.argv[1] + "/config.json"))
kind, layers = sys.argv[2], config["num_hidden_layers"]
first, rest, embed = {"offload": (0, "cpu", 0), "disk": ("disk", 0, 0), "host-embedding": (0, 0, "cpu")}[kind]
entries = {"model.embed_tokens": embed, "model.layers.0": first, "model.norm": rest}
entries.update({f"model.layers.{i}": rest for i in range(1, layers)})
if not config.get("tie_word_embeddings"): entries["lm_head"] = rest
print(json.dumps(entries))
PY
}
cases=(
  "one-gpu|--device cuda:0 -p hello"
  "long-prompt|--device cuda:0 -p \"$long\""
  "batch-2|--device cuda:0 -p hello -p \"$long\""
  "batch-3|--device cuda:0 -p hello -p \"$long\" -p \"And God said\""
  "offload-stream|--device cuda:0 --device-map \"\$(device_map \"\$model\" offload)\" --offload-exec stream -p \"$long\""
  "offload-cpu|--device cuda:0 --device-map \"\$(device_map \"\$model\" offload)\" --offload-exec cpu -p \"$long\""
  "offload-auto|--device cuda:0 --device-map \"\$(device_map \"\$model\" offload)\" --offload-exec auto -p \"$long\" -p hello"
  "disk-stream|--device cuda:0 --device-map \"\$(device_map \"\$model\" disk)\" --max-memory 0=64GiB,cpu=1GiB,disk --offload-exec stream -p \"$long\""
  "host-embedding|--device cuda:0 --device-map \"\$(device_map \"\$model\" host-embedding)\" -p \"$long\""
)
status=0
for model in "$root"/tests/fixtures/models/*/; do
  name=$(basename "$model")
  for entry in "${cases[@]}"; do
    label=${entry%%|*}
    options=${entry#*|}
    for build in before after; do
      binary=$([ $build = before ] && echo "$before" || echo "$after")
      eval "\"$binary\" generate --model \"$model\" -n 24 --json $options" >"$out/outputs/$name-$label-$build.json" \
        2>"$out/outputs/$name-$label-$build.err"
      echo $? >"$out/outputs/$name-$label-$build.rc"
    done
    if ! cmp -s "$out/outputs/$name-$label-before.rc" "$out/outputs/$name-$label-after.rc"; then
      line="FAIL $name $label: exit $(cat "$out/outputs/$name-$label-before.rc") before, $(cat "$out/outputs/$name-$label-after.rc") after"
      status=1
    elif ! cmp -s "$out/outputs/$name-$label-before.json" "$out/outputs/$name-$label-after.json"; then
      line="DIFF $name $label"
      status=1
    elif [ "$(cat "$out/outputs/$name-$label-after.rc")" != 0 ]; then
      line="FAIL $name $label: exit $(cat "$out/outputs/$name-$label-after.rc") in both builds"
      status=1
    else
      line="same $name $label ($(wc -c <"$out/outputs/$name-$label-after.json") bytes)"
    fi
    echo "$line" | tee -a "$out/outputs.txt"
  done
done
exit $status
