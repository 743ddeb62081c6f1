#!/usr/bin/env bash
# One call on the GPU machine (the device tool): GPU tests, compute-sanitizer, then shardlm against
# Transformers on the Llama-3-8B shape: one GPU, and a device map with an 8 GiB GPU budget and the
# rest offloaded to the CPU (every --offload-exec). Expects the binaries built here for sm_90a in
# .device-carry/bin and the shared libraries they need in .device-carry/lib
# (bench/prepare_device_carry.sh). Logs go to $OUT; a short table is printed last.
# SECTIONS picks what runs (default: every section named below), to fit a call's time
# limit. comm: all-reduce latency by size (peer and NCCL; on one GPU, the peer protocol with both
# ranks on it). tp: TP=2 against TP=1 and Transformers' tp_plan under torchrun (two GPUs or more).
# map2: a balanced device map over two GPUs against one GPU and Transformers' device_map="auto".
# map2shared: the same map's two workspaces on one GPU (--cuda-devices 0,0): what its hand-offs cost.
source "$(dirname "$0")/device_session_env.sh"
shape=${SHAPE:-llama3-8b}
prompt_len=${PROMPT_LEN:-512}
new_tokens=${NEW_TOKENS:-128}
sections=${SECTIONS:-tests sanitizer bench offload comm tp map2 map2shared}
offload_budget=${OFFLOAD_BUDGET:-0=8GiB,cpu=100GiB}
default_budget_json='{"0": "8GiB", "cpu": "100GiB"}'
offload_budget_json=${OFFLOAD_BUDGET_JSON:-$default_budget_json}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cp "$root/.device-carry/commit.txt" "$out/commit.txt" 2>/dev/null && echo "built from $(cat "$out/commit.txt")"

tests_status=0
sanitizer_status=0
if wants tests; then
echo "== GPU tests"
for test in "$bin"/test_cuda_*; do
  timeout 300 "$test" 2>&1 | tee -a "$out/tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]" || tests_status=1
  [ "${PIPESTATUS[0]}" -eq 0 ] || tests_status=1
done
fi

if wants sanitizer; then
echo "== compute-sanitizer"
for tool in memcheck racecheck; do
  timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/test_cuda_sampling" >"$out/sanitizer-$tool-sampling.log" 2>&1 || sanitizer_status=1
  timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/test_cuda_model" --gtest_filter='*qwen3*:*mistral*' \
    >"$out/sanitizer-$tool-model.log" 2>&1 || sanitizer_status=1
  timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/test_cuda_device_map" \
    >"$out/sanitizer-$tool-device-map.log" 2>&1 || sanitizer_status=1
  # The sanitizer runs one kernel at a time, so ranks spinning on each other (the peer all-reduce)
  # cannot run under it; racecheck of the rank threads takes minutes. memcheck covers the TP model.
  [ "$tool" = memcheck ] && { timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 3 \
    "$bin/test_cuda_tensor_parallel" --gtest_filter='*TwoRanks*qwen3*:*Refuses*' \
    >"$out/sanitizer-$tool-tensor-parallel.log" 2>&1 || sanitizer_status=1; }
  tail -n 2 "$out/sanitizer-$tool-model.log" "$out/sanitizer-$tool-device-map.log"
done
fi

checkpoint=/tmp/$shape
if wants bench || wants offload || wants tp || wants map2 || wants map2shared; then
  echo "== benchmarks ($shape, prompt $prompt_len, $new_tokens new tokens)"
  python3 bench/transformers_peer.py --shape "bench/shapes/$shape.json" --save "$checkpoint" \
    --prompt-len "$prompt_len" --new-tokens "$new_tokens" >"$out/peer-b1.json" 2>"$out/peer-b1.log"
  sed -i '/^saved /d' "$out/peer-b1.json"
  "$bin/shardlm" bench --device cuda:0 --model "$checkpoint" --prompt-len "$prompt_len" --new-tokens "$new_tokens" \
    >"$out/shardlm-b1.json" 2>"$out/shardlm-b1.log"
fi
if wants bench; then
  "$bin/shardlm" bench --device cuda:0 --random "$shape" --prompt-len "$prompt_len" --new-tokens "$new_tokens" \
    --batch 16 >"$out/shardlm-b16.json" 2>"$out/shardlm-b16.log"
  # Transformers' fast path beside its eager one: generate() with a static cache, torch.compiled.
  for batch in 1 16; do
    timeout 600 python3 bench/transformers_peer.py --load "$checkpoint" --compiled --batch "$batch" \
      --prompt-len "$prompt_len" --new-tokens "$new_tokens" >"$out/peer-compiled-b$batch.json" 2>"$out/peer-compiled-b$batch.log"
  done
fi
if wants offload; then
  echo "== device map: $offload_budget"
  for mode in auto stream cpu; do
    "$bin/shardlm" bench --device cuda:0 --model "$checkpoint" --prompt-len "$prompt_len" --new-tokens "$new_tokens" \
      --device-map auto --max-memory "$offload_budget" --offload-exec "$mode" \
      >"$out/shardlm-offload-$mode.json" 2>"$out/shardlm-offload-$mode.log"
    tail -n 3 "$out/shardlm-offload-$mode.log"
  done
  python3 bench/transformers_peer.py --load "$checkpoint" --device-map auto --max-memory "$offload_budget_json" \
    --prompt-len "$prompt_len" --new-tokens 8 >"$out/peer-offload.json" 2>"$out/peer-offload.log"
fi

if wants tp && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  echo "== tensor parallelism, 2 GPUs"
  timeout 300 "$bin/shardlm" bench --device cuda:0 --tp 2 --model "$checkpoint" --prompt-len "$prompt_len" \
    --new-tokens "$new_tokens" >"$out/shardlm-tp2.json" 2>"$out/shardlm-tp2.log"
  timeout 300 torchrun --nproc-per-node 2 bench/transformers_peer.py --load "$checkpoint" --tp-plan auto \
    --prompt-len "$prompt_len" --new-tokens "$new_tokens" >"$out/peer-tp2.json" 2>"$out/peer-tp2.log"
fi

if wants map2 && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  echo "== device map over 2 GPUs (balanced)"
  timeout 300 "$bin/shardlm" bench --device cuda:0 --model "$checkpoint" --prompt-len "$prompt_len" \
    --new-tokens "$new_tokens" --device-map balanced --max-memory 0=100GiB,1=100GiB \
    >"$out/shardlm-map2.json" 2>"$out/shardlm-map2.log"
  tail -n 3 "$out/shardlm-map2.log"
  timeout 300 python3 bench/transformers_peer.py --load "$checkpoint" --device-map auto \
    --max-memory '{"0": "100GiB", "1": "100GiB"}' --prompt-len "$prompt_len" --new-tokens "$new_tokens" \
    >"$out/peer-map2.json" 2>"$out/peer-map2.log"
fi

if wants map2shared; then
  echo "== device map over 2 GPUs' workspaces on cuda:0 (balanced, --cuda-devices 0,0)"
  timeout 300 "$bin/shardlm" bench --device cuda:0 --model "$checkpoint" --prompt-len "$prompt_len" \
    --new-tokens "$new_tokens" --device-map balanced --cuda-devices 0,0 \
    >"$out/shardlm-map2shared.json" 2>"$out/shardlm-map2shared.log"
  tail -n 3 "$out/shardlm-map2shared.log"
fi

if wants comm; then
  echo "== all-reduce latency"
  n_gpus=$(nvidia-smi -L | wc -l)
  shared=$([ "$n_gpus" -lt 2 ] && echo --shared-gpu)
  for tp in 2 4 8; do
    [ "$tp" -le "$n_gpus" ] || [ -n "$shared" ] || continue
    timeout 120 "$bin/shardlm" bench-comm --tp "$tp" $shared >"$out/comm-tp$tp.json" 2>"$out/comm-tp$tp.log"
  done
  python3 - "$out" <<'PY'
import json, sys, pathlib
for path in sorted(pathlib.Path(sys.argv[1]).glob("comm-tp*.json")):
    try:
        d = json.loads(path.read_text())
    except Exception as error:
        print(path.name, "error:", error); continue
    print(f"all-reduce tp={d['tp']} on {d['devices']} (bf16, us): " + ", ".join(
        f"{r['bytes']}B peer {r.get('peer_us', float('nan')):.1f} nccl {r.get('nccl_us', float('nan')):.1f}"
        for r in d["all_reduce"] if r["bytes"] in (8192, 65536, 1048576, 16777216)))
PY
fi

python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception as error:
        return {"error": str(error)}
ours, peer, batch16 = load("shardlm-b1.json"), load("peer-b1.json"), load("shardlm-b16.json")
compiled, compiled16 = load("peer-compiled-b1.json"), load("peer-compiled-b16.json")
offload = {mode: load(f"shardlm-offload-{mode}.json") for mode in ("auto", "stream", "cpu")}
peer_offload = load("peer-offload.json")
def cell(d, key, fmt="{:.2f}"):
    return fmt.format(d[key]) if key in d else "n/a"
def gigabytes(d, key):
    return "{:.1f}".format(d[key] / 1e9) if key in d else "n/a"
rows = [
    ("prefill ms", cell(ours, "prefill_ms"), cell(peer, "prefill_ms")),
    ("TPOT median ms", cell(ours, "time_per_output_token_ms_median"), cell(peer, "time_per_output_token_ms_median")),
    ("TPOT p90 ms", cell(ours, "time_per_output_token_ms_p90"), cell(peer, "time_per_output_token_ms_p90")),
    ("decode tok/s b1", cell(ours, "decode_tokens_per_s", "{:.0f}"), cell(peer, "decode_tokens_per_s", "{:.0f}")),
    ("decode tok/s b16", cell(batch16, "decode_tokens_per_s", "{:.0f}"), ""),
    ("compiled peer TPOT ms", "", cell(compiled, "time_per_output_token_ms_median")),
    ("compiled peer prefill ms", "", cell(compiled, "prefill_ms")),
    ("compiled peer tok/s b16", "", cell(compiled16, "decode_tokens_per_s", "{:.0f}")),
    ("floor ms (copy bw)", cell(ours, "bandwidth_floor_ms_per_token"), ""),
    ("copy GB/s", cell(ours, "memory_bandwidth_gb_per_s", "{:.0f}"), ""),
    ("load GB/s", cell(ours, "load_gb_per_s"), ""),
    ("H2D GB/s", cell(ours, "host_to_device_gb_per_s"), ""),
    ("device memory GB", gigabytes(ours, "device_memory_used_bytes"), gigabytes(peer, "device_memory_peak_bytes")),
]
if "time_per_output_token_ms_median" in ours and "time_per_output_token_ms_median" in peer:
    rows.append(("TPOT peer/ours", "{:.1f}x".format(peer["time_per_output_token_ms_median"] / ours["time_per_output_token_ms_median"]), ""))
if "time_per_output_token_ms_median" in ours and "time_per_output_token_ms_median" in compiled:
    rows.append(("TPOT compiled/ours", "{:.2f}x".format(compiled["time_per_output_token_ms_median"] / ours["time_per_output_token_ms_median"]), ""))
if "decode_tokens_per_s" in batch16 and "decode_tokens_per_s" in compiled16:
    rows.append(("b16 tok/s ours/compiled", "{:.2f}x".format(batch16["decode_tokens_per_s"] / compiled16["decode_tokens_per_s"]), ""))
if "decode_tokens_per_s" in ours and "decode_tokens_per_s" in batch16:
    rows.append(("b16/b1 tok/s", "{:.1f}x".format(batch16["decode_tokens_per_s"] / ours["decode_tokens_per_s"]), ""))
for mode, result in offload.items():
    o = result.get("offload", {})
    rows.append((f"offload {mode} TPOT", cell(result, "time_per_output_token_ms_median"),
                 cell(peer_offload, "time_per_output_token_ms_median") if mode == "auto" else ""))
    rows.append(("  prefill ms", cell(result, "prefill_ms"), ""))
    rows.append(("  over floor med/strict", f"{cell(o, 'median_over_better_floor')}/{cell(o, 'median_over_strictest_floor')}", ""))
    rows.append(("  steps stream/cpu", f"{o.get('stream_steps', 'n/a')}/{o.get('cpu_steps', 'n/a')}", ""))
    rows.append(("  CPU share GB/s mean/best", f"{cell(o, 'cpu_step_gb_per_s', '{:.0f}')}/{cell(o, 'cpu_step_gb_per_s_fastest', '{:.0f}')}", ""))
    samples = o.get("cpu_read_gb_per_s_samples", [])
    if samples:
        rows.append(("  CPU probe GB/s", f"{min(samples):.0f}-{max(samples):.0f}", ""))
def against_one_gpu(name, result, peer):
    """A device map's TPOT and prefill (beside Transformers' when there is a peer), and over one GPU's."""
    for key, what in (("time_per_output_token_ms_median", "TPOT ms"), ("prefill_ms", "prefill ms")):
        rows.append((f"{name} {what}", cell(result, key), cell(peer, key) if peer is not None else ""))
        if key in result and key in ours:
            rows.append(("  / 1 GPU", "{:.3f}".format(result[key] / ours[key]), ""))
against_one_gpu("map 2 on 1 GPU", load("shardlm-map2shared.json"), None)
against_one_gpu("map 2 GPUs", load("shardlm-map2.json"), load("peer-map2.json"))
tp2, peer_tp2 = load("shardlm-tp2.json"), load("peer-tp2.json")
rows.append(("TP=2 TPOT ms", cell(tp2, "time_per_output_token_ms_median"), cell(peer_tp2, "time_per_output_token_ms_median")))
rows.append(("TP=2 prefill ms", cell(tp2, "prefill_ms"), cell(peer_tp2, "prefill_ms")))
if "time_per_output_token_ms_median" in tp2 and "time_per_output_token_ms_median" in ours:
    rows.append(("TP=2 / TP=1 TPOT", "{:.2f}".format(tp2["time_per_output_token_ms_median"] / ours["time_per_output_token_ms_median"]), ""))
o = offload["auto"].get("offload", {})
rows.append(("offload GB", "{:.2f}".format(o["offloaded_bytes"] / 1e9) if "offloaded_bytes" in o else "n/a", ""))
rows.append(("floors stream/cpu ms", f"{cell(o, 'stream_floor_ms')}/{cell(o, 'cpu_floor_ms')}", ""))
print(f"{'metric':<26}{'shardlm':>12}{'transformers':>14}")
for name, a, b in rows:
    print(f"{name:<26}{a:>12}{b:>14}")
PY
# The device tool returns at most 8 files: everything goes back as one archive.
tar -C "$out" -czf /tmp/gpu-session.tar.gz . && rm -rf "${out:?}"/* && mv /tmp/gpu-session.tar.gz "$out/"
echo "tests: $([ $tests_status -eq 0 ] && echo ok || echo FAILED)  sanitizer: $([ $sanitizer_status -eq 0 ] && echo clean || echo ERRORS)"
