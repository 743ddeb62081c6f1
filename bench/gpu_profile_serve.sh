#!/usr/bin/env bash
# Where a serving step's time goes, kernel by kernel: Nsight Compute (time only, one pass, clocks and
# caches left as they are) over `shardlm serve`'s passes that take no graph (the NVTX range "eager
# pass": prompt chunks, beside the decode rows that share their steps), while REQUESTS prompts of
# INPUT_LEN tokens (OUTPUT_LEN new) arrive at once, twice; the table keeps the second burst's half of
# the launches, since the first makes (and times) cuBLASLt's plans. Default: 64 x 462 / 16 under
# gpu_serve_bench.sh's server options (MAX_NUM_SEQS, MAX_NUM_BATCHED_TOKENS, ...): four steps of
# prompt chunks a burst, the later ones beside decode rows, as in the 462 / 256 burst's first
# phase. Run on the GPU machine after bench/prepare_device_carry.sh, like gpu_serve_bench.sh.
source "$(dirname "$0")/device_session_env.sh"
source "$(dirname "$0")/serve_common.sh"
requests=${REQUESTS:-64}
input_len=${INPUT_LEN:-462}
output_len=${OUTPUT_LEN:-16}

start_server "$out/serve-profile.log" ncu --nvtx --nvtx-include "eager pass/" --clock-control none \
  --cache-control none --metrics gpu__time_duration.sum -f -o "$out/serve-profile"
for burst in 1 2; do
  bench_serve --num-requests "$requests" --input-len "$input_len" --output-len "$output_len" --seed "$burst" \
    >/dev/null 2>"$out/profile-burst-$burst.err" || echo "burst $burst failed: see profile-burst-$burst.err"
done
# The profiler writes its report once the server, its child, has exited. The pattern is anchored:
# the profiler's own command line holds the server's too, and it must not be signalled.
pkill -TERM -f "^$bin/shardlm serve"
wait "$server_pid"
ncu --import "$out/serve-profile.ncu-rep" --csv --page raw --print-units base >"$out/serve-profile.csv"
python3 bench/ncu_kernel_table.py "$out/serve-profile.csv" --by-name --last 0.5
