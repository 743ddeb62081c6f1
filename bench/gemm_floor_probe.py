"""What cuBLAS (through PyTorch) gives for Llama-3-8B's four projections at a step's row counts: ms
and TFLOP/s per product, and their sum over 32 layers. The floor a serving step's GEMMs can reach
on the GPU at hand (docs/PERFORMANCE.md, session 29). Run on the GPU machine: python3
bench/gemm_floor_probe.py [ROWS ...]"""
import json
import sys

import torch

PROJECTIONS = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
LAYERS = 32
REPEATS = 20


def time_product(m, n, k):
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        x @ w.t()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(REPEATS):
        x @ w.t()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / REPEATS


def main():
    rows = [int(arg) for arg in sys.argv[1:]] or [256, 500, 512, 4096, 8192, 8448]
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    for m in rows:
        result = {"rows": m}
        layer_ms = 0.0
        for name, (n, k) in PROJECTIONS.items():
            ms = time_product(m, n, k)
            result[name] = {"ms": round(ms, 4), "tflops": round(2 * m * n * k / ms / 1e9, 1)}
            layer_ms += ms
        result["layer_ms"] = round(layer_ms, 3)
        result[f"{LAYERS}_layers_ms"] = round(LAYERS * layer_ms, 2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
