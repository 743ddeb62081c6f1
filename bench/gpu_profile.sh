#!/usr/bin/env bash
# Where one decode step's time goes, kernel by kernel: Nsight Compute (clocks left as they are)
# over a short random-weight Llama-3-8B run, summarised per kernel name and grid. BATCH, PROMPT_LEN,
# KERNELS (a name regex; batched decode's GEMMs are cuBLASLt's), SKIP and LAUNCHES change what is
# profiled; BINARY profiles another shardlm (say the "before" build of bench/compare_builds.sh). Run on
# the GPU machine after bench/prepare_device_carry.sh, like bench/gpu_session.sh.
# FAST=1 reads only each kernel's time, in one pass with the caches left warm, as a replayed graph
# finds them: each further metric replays every kernel after saving the memory it may write, which
# at batch 500 (57 GB) ran past 300 s (session 29's table: FAST=1 BATCH=500 PROMPT_LEN=590
# KERNELS=. LAUNCHES=400).
# Only replayed decode steps' kernels are profiled (the NVTX range "decode step" that
# cuda_llama_model.cpp opens around each graph launch); PHASE=all profiles every launch from the
# start, prompts included, as steps without a graph (experts or layers in cpu memory) need.
source "$(dirname "$0")/device_session_env.sh"
phase=(--nvtx --nvtx-include "decode step/")
[ "${PHASE:-decode}" = all ] && phase=()
metrics=(--metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size)
[ "${FAST:-0}" = 1 ] && metrics=(--cache-control none --metrics gpu__time_duration.sum)
ncu "${phase[@]}" --clock-control none "${metrics[@]}" -k "regex:${KERNELS:-gemv|attention|qkv_rope|sampling|embedding|rmsnorm}" \
  --launch-skip "${SKIP:-0}" --launch-count "${LAUNCHES:-600}" --csv --page raw --print-units base \
  "${BINARY:-$bin/shardlm}" bench --device cuda:0 --random "${SHAPE:-llama3-8b}" --prompt-len "${PROMPT_LEN:-512}" --new-tokens 2 --batch "${BATCH:-1}" \
  >"$out/ncu-decode.csv" 2>"$out/ncu-decode.log"
python3 - "$out/ncu-decode.csv" <<'PY'
import csv, io, sys, collections
def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None
text = open(sys.argv[1]).read()
if '"ID"' not in text:
    sys.exit("no kernel was profiled: see ncu-decode.log (PHASE=all profiles without the decode-step range)")
text = text[text.index('"ID"'):]  # the program's own output comes first
rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("Kernel Name") and number(r.get("gpu__time_duration.sum", "")) is not None]
# Kernels are told apart by name and grid size (the GEMVs of Q/K/V, o_proj, gate/up and down differ
# in grid).
totals, read_bytes, counts = collections.defaultdict(float), collections.defaultdict(float), collections.Counter()
for r in rows:
    name = r["Kernel Name"].split("(")[0][:40] + " grid " + r.get("Grid Size", "?")
    totals[name] += number(r["gpu__time_duration.sum"]) / 1e3
    read_bytes[name] += number(r.get("dram__bytes_read.sum", "0")) or 0.0
    counts[name] += 1
print(f"{'kernel':<56}{'count':>6}{'total us':>10}{'mean us':>9}{'GB/s':>7}")
for name, total in sorted(totals.items(), key=lambda item: -item[1]):
    # FAST=1 reads no DRAM counter: no figure rather than 0 GB/s.
    read_speed = f"{read_bytes[name] / total / 1e3:>7.0f}" if read_bytes[name] else f"{'n/a':>7}"
    print(f"{name:<56}{counts[name]:>6}{total:>10.1f}{total / counts[name]:>9.2f}{read_speed}")
PY
