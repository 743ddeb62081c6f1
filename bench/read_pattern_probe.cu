// How fast one GPU streams weight rows under the access patterns an expert kernel can choose: each
// warp reads a tile of rows whole, with `lanes` lanes per row, each lane `loads` 16-byte loads of a
// row in flight per round (the row's bytes of a round are contiguous), and `rows` rows per lane
// group. The current batch tiles are lanes 4, loads 4, rows 4 (32 rows a warp, 256 bytes of each
// a round). Occupancy is capped with shared memory to `blocks` per multiprocessor (0: no cap).
// Prints GB/s per pattern. Built by hand: nvcc -O3 -arch=sm_90a -o read_pattern_probe read_pattern_probe.cu
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdint>

#define CHECK(call)                                                                      \
  do {                                                                                   \
    cudaError_t e = (call);                                                              \
    if (e != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e));     \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

constexpr int kRowElements = 2048;  // bf16: 4 KB rows, as the Qwen3-30B-A3B experts' gate/up rows

template <int kLanes, int kLoads, int kRows>
__global__ void read_rows(const uint4* weights, int64_t n_rows, unsigned* sink) {
  extern __shared__ char cap[];
  constexpr int kGroups = 32 / kLanes;
  constexpr int kWarpRows = kGroups * kRows;
  constexpr int kRowVectors = kRowElements / 8;
  constexpr int kRoundVectors = kLanes * kLoads;
  const int lane = threadIdx.x % 32, group = lane / kLanes, sub = lane % kLanes;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t first_row = warp * kWarpRows;
  if (first_row >= n_rows) return;
  unsigned acc = 0;
  for (int v0 = 0; v0 < kRowVectors; v0 += kRoundVectors) {
    uint4 values[kRows][kLoads];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int s = 0; s < kLoads; ++s)
        values[r][s] = weights[(first_row + group + r * kGroups) * kRowVectors + v0 + s * kLanes + sub];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int s = 0; s < kLoads; ++s) acc ^= values[r][s].x ^ values[r][s].y ^ values[r][s].z ^ values[r][s].w;
  }
  if (acc == 0x9e3779b9u) sink[0] = acc + cap[0];
}

template <int kLanes, int kLoads, int kRows>
void measure(const uint4* weights, int64_t n_rows, unsigned* sink, int blocks_per_sm, int threads) {
  constexpr int kWarpRows = (32 / kLanes) * kRows;
  const int64_t warps = n_rows / kWarpRows;
  const int grid = int((warps * 32 + threads - 1) / threads);
  size_t smem = 0;
  if (blocks_per_sm > 0) {
    int max_smem = 0;
    CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0));
    smem = size_t(max_smem / blocks_per_sm - 1024);
    CHECK(cudaFuncSetAttribute(read_rows<kLanes, kLoads, kRows>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  float best = 1e30f;
  for (int trial = 0; trial < 6; ++trial) {
    CHECK(cudaEventRecord(start));
    read_rows<kLanes, kLoads, kRows><<<grid, threads, smem>>>(weights, n_rows, sink);
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (trial > 0 && ms < best) best = ms;
  }
  const double bytes = double(warps) * kWarpRows * kRowElements * 2;
  std::printf("lanes %2d loads %d rows %d threads %4d blocks/SM %2d: %7.1f GB/s (%.1f us)\n", kLanes, kLoads, kRows,
              threads, blocks_per_sm, bytes / best / 1e6, best * 1e3);
}

int main() {
  const int64_t n_rows = 262144;  // 1 GiB
  uint4* weights = nullptr;
  unsigned* sink = nullptr;
  CHECK(cudaMalloc(&weights, size_t(n_rows) * kRowElements * 2));
  CHECK(cudaMemset(weights, 1, size_t(n_rows) * kRowElements * 2));
  CHECK(cudaMalloc(&sink, 4));
  for (int blocks : {5, 8, 0}) {
    measure<4, 4, 4>(weights, n_rows, sink, blocks, 128);   // the batch tiles now
    measure<4, 8, 2>(weights, n_rows, sink, blocks, 128);
    measure<8, 4, 2>(weights, n_rows, sink, blocks, 128);
    measure<16, 4, 1>(weights, n_rows, sink, blocks, 128);
    measure<32, 4, 1>(weights, n_rows, sink, blocks, 128);
    measure<32, 8, 1>(weights, n_rows, sink, blocks, 128);
    measure<32, 8, 2>(weights, n_rows, sink, blocks, 128);
    measure<32, 4, 1>(weights, n_rows, sink, blocks, 256);
  }
  // A small read, as one layer's chosen experts at batch 1 (50 MB): launch and tail costs show.
  measure<32, 4, 1>(weights, 12288, sink, 0, 256);
  measure<4, 4, 4>(weights, 12288, sink, 0, 128);
  return 0;
}
