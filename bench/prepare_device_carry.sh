#!/usr/bin/env bash
# Builds what bench/gpu_session.sh (and gpu_moe_session.sh) run on the GPU machine (which has no Debian packages): the
# CUDA-enabled binaries for sm_90a and the shared libraries they load that its image lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/cuda/bin:$PATH
# Only the GPUs the device tool lends (H100/H200): two architectures would not fit the carry limit.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHARDLM_CUDA=ON -DSHARDLM_CUDA_ARCHITECTURES=90a-real >/dev/null
cmake --build build -j "$(nproc)" --target shardlm test_cuda_model test_cuda_sampling test_cuda_linear test_cuda_attention \
  test_cuda_device_map test_cuda_tensor_parallel test_cuda_peer_all_reduce \
  test_cuda_nccl test_cuda_moe test_cuda_moe_model test_cuda_penalties
rm -rf .device-carry/bin .device-carry/bin.tar.gz .device-carry/lib
mkdir -p .device-carry/bin .device-carry/lib
cp build/tools/cli/shardlm .device-carry/bin/
# The CPU GEMV against the read probe on the GPU host's own cores (see its header).
g++ -O3 -std=c++20 -mavx2 -mfma -mf16c -fopenmp -Isrc bench/cpu_matmul_probe.cpp build/src/libshardlm.a -lfmt \
  -o .device-carry/bin/cpu_matmul_probe
find build/tests -maxdepth 1 -name "test_cuda_*" -type f -executable -exec cp {} .device-carry/bin/ \;
strip --strip-unneeded .device-carry/bin/*
# The device call carries at most 64 MiB with the working tree: the binaries travel compressed
# (carry .device-carry/bin.tar.gz, lib and commit.txt), and device_session_env.sh unpacks them.
tar -C .device-carry -czf .device-carry/bin.tar.gz bin
for library in libfmt.so.9 libpcre2-8.so.0 libutf8proc.so.2; do
  cp -L "/lib/x86_64-linux-gnu/$library" .device-carry/lib/
done
# The device copy of the tree has no git history: record what the binaries were built from.
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tools tests bench || echo '+local changes')" \
  >.device-carry/commit.txt
du -sh .device-carry/bin.tar.gz .device-carry/lib
