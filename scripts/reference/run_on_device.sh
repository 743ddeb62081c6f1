#!/usr/bin/env bash
# Run on the GPU machine from the repository root (the KJV text must already be in
# .device-carry/kjv.txt: run scripts/reference/export_kjv.sh first, where bible-kjv is installed).
#
#   scripts/reference/run_on_device.sh [--smoke | --fixtures-only]
#   scripts/reference/run_on_device.sh --only-models NAME[,NAME...]
#
# Builds tests/fixtures/{tokenizers,models} (CPU) and, at the same time, trains
# models/kjv-llama (GPU); logs and two tars (fixtures.tar, kjv-llama.tar) go to $OUT. With
# --only-models, builds just those model fixtures with the tokenizers already in tests/fixtures (the
# mixture-of-experts ones: mixtral-moe-f32,mixtral-moe-bf16,qwen2-moe-shared-f32,
# qwen2-moe-shared-bf16,qwen3-moe-dense-layer-f32,qwen3-moe-dense-layer-bf16) into $OUT/models.tar.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/shardlm-reference-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
smoke=""; [ "${1:-}" = "--smoke" ] && smoke="--smoke"
only_fixtures=0; [ "${1:-}" = "--fixtures-only" ] && only_fixtures=1

{ nvidia-smi -L; python3 -c 'import sys, torch, transformers, tokenizers, safetensors, numpy
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "tokenizers", tokenizers.__version__,
      "safetensors", safetensors.__version__, "numpy", numpy.__version__)'; } 2>&1 | tee "$OUT/versions.txt"
if [ "${1:-}" = "--only-models" ]; then
  python3 scripts/reference/make_fixtures.py --only-models "$2" --out tests/fixtures 2>&1 | tee "$OUT/fixtures.log"
  rc=${PIPESTATUS[0]}
  dirs=()
  for name in ${2//,/ }; do
    for dir in tests/fixtures/models/"$name" tests/fixtures/models/"$name"-fused tests/fixtures/models/"$name"-per-expert; do
      [ -d "$dir" ] && dirs+=("$dir")
    done
  done
  tar -cf "$OUT/models.tar" tests/fixtures/README.md "${dirs[@]}"
  ls -la "$OUT"
  exit "$rc"
fi
[ -s .device-carry/kjv.txt ] || { echo "missing .device-carry/kjv.txt" >&2; exit 2; }

# fixtures on 6 CPU threads in the background, training in the foreground
python3 scripts/reference/make_fixtures.py --kjv .device-carry/kjv.txt --out tests/fixtures --threads 6 \
  > "$OUT/fixtures.log" 2>&1 &
fix_pid=$!
train_rc=skipped
if [ "$only_fixtures" = 0 ]; then
  python3 scripts/reference/train_default_model.py --data .device-carry/kjv.txt --out models/kjv-llama $smoke \
    2>&1 | tee "$OUT/train.log"
  train_rc=$?
fi
wait "$fix_pid"; fix_rc=$?
tail -n 40 "$OUT/fixtures.log"
echo "train rc=$train_rc fixtures rc=$fix_rc"
tar -cf "$OUT/fixtures.tar" tests/fixtures/README.md tests/fixtures/tokenizers tests/fixtures/models
# files coming back from the device machine are limited to 16 MiB each: split the model's tar
[ "$only_fixtures" = 0 ] && tar -cf - models/kjv-llama | split -b 15m -d - "$OUT/kjv-llama.tar.part"
du -sh tests/fixtures/tokenizers tests/fixtures/models models/kjv-llama
ls -la "$OUT"
