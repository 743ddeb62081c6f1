#!/usr/bin/env bash
# Where one decode step's time goes, kernel by kernel: Nsight Compute (clocks left as they are)
# over a short random-weight Llama-3-8B run, summarised per kernel name. Run on the GPU machine
# after bench/prepare_device_carry.sh, like bench/gpu_session.sh.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
root=$(pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /work
[ "$root" = /work/main ] || ln -sfn "$root" /work/main
export LD_LIBRARY_PATH=$root/.device-carry/lib:${LD_LIBRARY_PATH:-}
ncu --clock-control none --metrics gpu__time_duration.sum -k 'regex:gemv|attention|qkv_rope|sampling|embedding|rmsnorm' \
  --launch-count 600 --csv --page raw \
  "$root/.device-carry/bin/shardlm" bench --device cuda:0 --random "${SHAPE:-llama3-8b}" --prompt-len 16 --new-tokens 2 \
  >"$out/ncu-decode.csv" 2>"$out/ncu-decode.log"
python3 - "$out/ncu-decode.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("Kernel Name") and r.get("gpu__time_duration.sum", "").replace(".", "").isdigit()]
# Prefill runs cuBLASLt (not listed) and the flash kernel; every GEMV is a decode step's.
totals, counts = collections.defaultdict(float), collections.Counter()
for r in rows:
    name = r["Kernel Name"].split("<")[0].split("(")[0]
    totals[name] += float(r["gpu__time_duration.sum"]) / 1e3
    counts[name] += 1
print(f"{'kernel':<28}{'count':>7}{'total us':>12}{'mean us':>10}")
for name, total in sorted(totals.items(), key=lambda item: -item[1]):
    print(f"{name:<28}{counts[name]:>7}{total:>12.1f}{total / counts[name]:>10.2f}")
PY
