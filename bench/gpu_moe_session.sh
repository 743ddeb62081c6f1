#!/usr/bin/env bash
# One call on the GPU machine (the device tool) for the mixture-of-experts issue: the MoE reference
# fixtures from Transformers, the GPU tests, and shardlm against Transformers on the Qwen3-30B-A3B
# and Mixtral-8x7B shapes (bf16, random weights), with experts in cpu memory (--cpu-moe) under an
# 8 GiB GPU budget. Expects the binaries built here for sm_90a in .device-carry/bin and their
# libraries in .device-carry/lib (bench/prepare_device_carry.sh). Everything goes back as one
# archive in $OUT; a short table is printed last.
# SECTIONS picks what runs (default: all of them); a call has 10 minutes, so give each call one or
# two sections:
#   fixtures  scripts/reference/run_on_device.sh --only-models (the six MoE fixtures, or those
#             MOE_FIXTURES names) -> models.tar
#   tests     the GPU tests that cover MoE, scored prompt rows and the dense paths they touch
#   qwen3     Qwen3-30B-A3B: shardlm batch 1 and 16, Transformers eager and compiled, batch 1
#             (QWEN3_PEERS="" leaves the peers out)
#   mixtral   Mixtral-8x7B (93 GB): shardlm batch 1, Transformers eager batch 1
#   cpumoe    Qwen3-30B-A3B saved to /dev/shm (61 GB of the host's 128 GiB), shardlm --device-map auto
#             with an 8 GiB GPU budget and --cpu-moe
#   cpumoepeer  Transformers with the same budget (Accelerate offload), in its own call: it copies
#             about 57 GB of experts into memory beside the /dev/shm copy, which may not fit
source "$(dirname "$0")/device_session_env.sh"
prompt_len=${PROMPT_LEN:-512}
new_tokens=${NEW_TOKENS:-128}
sections=${SECTIONS:-fixtures tests qwen3 mixtral cpumoe cpumoepeer}
fixtures=${MOE_FIXTURES:-mixtral-moe-f32,mixtral-moe-bf16,qwen2-moe-shared-f32,qwen2-moe-shared-bf16,qwen3-moe-dense-layer-f32,qwen3-moe-dense-layer-bf16}
budget=${CPU_MOE_BUDGET:-0=8GiB,cpu=100GiB}
budget_json=${CPU_MOE_BUDGET_JSON:-'{"0": "8GiB", "cpu": "100GiB"}'}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cp "$root/.device-carry/commit.txt" "$out/commit.txt" 2>/dev/null && echo "built from $(cat "$out/commit.txt")"

status=0
if wants fixtures; then
  echo "== MoE fixtures"
  OUT="$out" timeout 300 bash scripts/reference/run_on_device.sh --only-models "$fixtures" \
    >"$out/fixtures-run.log" 2>&1 || status=1
  tail -n 5 "$out/fixtures-run.log"
fi

if wants tests; then
  echo "== GPU tests"
  for test in test_cuda_moe test_cuda_moe_model test_cuda_model test_cuda_tensor_parallel test_cuda_device_map; do
    timeout 300 "$bin/$test" >"$out/$test.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]" "$out/$test.log" | head -n 20
  done
fi

# shardlm bench and the eager / compiled Transformers peer on one shape with random weights.
bench_shape() {
  local shape=$1 batches=$2 peers=$3
  for batch in $batches; do
    timeout 300 "$bin/shardlm" bench --device cuda:0 --random "$shape" --prompt-len "$prompt_len" \
      --new-tokens "$new_tokens" --batch "$batch" >"$out/$shape-shardlm-b$batch.json" 2>"$out/$shape-shardlm-b$batch.log"
  done
  for peer in $peers; do
    local flag=""; [ "$peer" = compiled ] && flag=--compiled
    timeout 600 python3 bench/transformers_peer.py --shape "bench/shapes/$shape.json" $flag \
      --prompt-len "$prompt_len" --new-tokens "$new_tokens" >"$out/$shape-peer-$peer-b1.json" 2>"$out/$shape-peer-$peer-b1.log"
  done
}
if wants qwen3; then echo "== qwen3-30b-a3b"; bench_shape qwen3-30b-a3b "1 16" "${QWEN3_PEERS-eager compiled}"; fi
if wants mixtral; then echo "== mixtral-8x7b"; bench_shape mixtral-8x7b 1 eager; fi

# The random Qwen3-30B-A3B checkpoint in memory (a machine left idle is given back, /dev/shm with it).
checkpoint=/dev/shm/qwen3-30b-a3b
save_checkpoint() {
  [ -f "$checkpoint/config.json" ] || timeout 600 "$bin/shardlm" bench --random qwen3-30b-a3b --save "$checkpoint" \
    >"$out/cpumoe-save.log" 2>&1
}
if wants cpumoe; then
  echo "== qwen3-30b-a3b, --cpu-moe, $budget"
  save_checkpoint
  timeout 600 "$bin/shardlm" bench --device cuda:0 --model "$checkpoint" --prompt-len "$prompt_len" \
    --new-tokens "$new_tokens" --device-map auto --max-memory "$budget" --cpu-moe \
    >"$out/cpumoe-shardlm.json" 2>"$out/cpumoe-shardlm.log"
  tail -n 3 "$out/cpumoe-shardlm.log"
fi
if wants cpumoepeer; then
  save_checkpoint
  timeout 600 python3 bench/transformers_peer.py --load "$checkpoint" --device-map auto --max-memory "$budget_json" \
    --prompt-len "$prompt_len" --new-tokens 8 >"$out/cpumoe-peer.json" 2>"$out/cpumoe-peer.log"
fi

python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception as error:
        return {"error": str(error)}
def cell(d, key, fmt="{:.2f}"):
    return fmt.format(d[key]) if key in d else "n/a"
rows = []
for shape in ("qwen3-30b-a3b", "mixtral-8x7b"):
    b1, b16 = load(f"{shape}-shardlm-b1.json"), load(f"{shape}-shardlm-b16.json")
    eager, compiled = load(f"{shape}-peer-eager-b1.json"), load(f"{shape}-peer-compiled-b1.json")
    rows += [(f"{shape} TPOT ms b1", cell(b1, "time_per_output_token_ms_median"), cell(eager, "time_per_output_token_ms_median")),
             ("  compiled peer TPOT ms", "", cell(compiled, "time_per_output_token_ms_median")),
             ("  active floor ms", cell(b1, "bandwidth_floor_ms_per_token"), ""),
             ("  over floor", cell(b1, "median_over_floor"), ""),
             ("  prefill ms", cell(b1, "prefill_ms"), cell(eager, "prefill_ms")),
             ("  tok/s b1 / b16", f"{cell(b1, 'decode_tokens_per_s', '{:.0f}')} / {cell(b16, 'decode_tokens_per_s', '{:.0f}')}", "")]
    if "decode_tokens_per_s" in b1 and "decode_tokens_per_s" in b16:
        rows.append(("  b16/b1 tok/s", "{:.1f}x".format(b16["decode_tokens_per_s"] / b1["decode_tokens_per_s"]), ""))
cpumoe, peer = load("cpumoe-shardlm.json"), load("cpumoe-peer.json")
c = cpumoe.get("cpu_moe", {})
rows += [("cpu-moe TPOT ms", cell(cpumoe, "time_per_output_token_ms_median"), cell(peer, "time_per_output_token_ms_median")),
         ("  cpu expert floor ms", cell(c, "cpu_expert_floor_ms"), ""),
         ("  gpu floor ms", cell(c, "gpu_floor_ms"), ""),
         ("  over cpu floor / summed", f"{cell(c, 'median_over_cpu_expert_floor')} / {cell(c, 'median_over_summed_floor')}", ""),
         ("  cpu read GB/s median", cell(c, "cpu_read_gb_per_s_median", "{:.0f}"), ""),
         ("  cpu experts ms / GB/s, mean", f"{cell(c, 'cpu_expert_compute_ms_per_token_mean')} / {cell(c, 'cpu_expert_gb_per_s_achieved', '{:.0f}')}", ""),
         ("  waiting for the gpu ms, mean", cell(c, "gpu_wait_ms_per_token_mean"), ""),
         ("  device memory GB", "{:.1f}".format(cpumoe["device_memory_used_bytes"] / 1e9) if "device_memory_used_bytes" in cpumoe else "n/a", "")]
print(f"{'metric':<28}{'shardlm':>14}{'transformers':>14}")
for name, a, b in rows:
    print(f"{name:<28}{a:>14}{b:>14}")
PY
models_tar=""; [ -f "$out/models.tar" ] && models_tar=models.tar
tar -C "$out" -czf /tmp/gpu-moe-session.tar.gz --exclude=models.tar . && find "$out" -mindepth 1 ! -name models.tar -delete
mv /tmp/gpu-moe-session.tar.gz "$out/"
echo "status: $([ $status -eq 0 ] && echo ok || echo FAILED) ${models_tar:+(fixtures in models.tar)}"
