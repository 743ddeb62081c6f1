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
# start, prompts included, as steps without a graph (experts or layers in cpu memory) need;
# PHASE=eager only the passes that take no graph (prompts; "eager pass").
source "$(dirname "$0")/device_session_env.sh"
phase=(--nvtx --nvtx-include "decode step/")
[ "${PHASE:-decode}" = all ] && phase=()
[ "${PHASE:-decode}" = eager ] && phase=(--nvtx --nvtx-include "eager pass/")
metrics=(--metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size)
[ "${FAST:-0}" = 1 ] && metrics=(--cache-control none --metrics gpu__time_duration.sum)
ncu "${phase[@]}" --clock-control none "${metrics[@]}" -k "regex:${KERNELS:-gemv|attention|qkv_rope|sampling|embedding|rmsnorm}" \
  --launch-skip "${SKIP:-0}" --launch-count "${LAUNCHES:-600}" --csv --page raw --print-units base \
  "${BINARY:-$bin/shardlm}" bench --device cuda:0 --random "${SHAPE:-llama3-8b}" --prompt-len "${PROMPT_LEN:-512}" --new-tokens 2 --batch "${BATCH:-1}" \
  >"$out/ncu-decode.csv" 2>"$out/ncu-decode.log"
python3 bench/ncu_kernel_table.py "$out/ncu-decode.csv"
