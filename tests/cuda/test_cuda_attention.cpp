// Both attention kernels against a double-precision reference on random bf16 inputs: the general
// split-K kernel (decode and mixed batches) and the tensor-core prefill kernel (one sequence's run
// of positions), with GQA, a chunk that starts mid-sequence, and a sliding window. The keys and
// values sit in a paged cache whose blocks are in reverse order, so the block-table lookups count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/flash_attention.h"
#include "core/dtype.h"
#include "cuda_test_support.h"

namespace shardlm::cuda {
namespace {

struct Case {
  int head_dim, n_heads, n_kv_heads, n_rows, first_position, sliding_window;
};

template <typename T>
DeviceBuffer upload(const std::vector<T>& values) {
  DeviceBuffer buffer(values.size() * sizeof(T));
  CUDA_CHECK(cudaMemcpy(buffer.get(), values.data(), buffer.bytes(), cudaMemcpyHostToDevice));
  return buffer;
}

// Runs one kernel on a case and returns its relative L2 error against the reference. key_splits:
// the tensor-core kernel's (0: as prefill_attention_key_splits chooses).
double attention_error(const Case& c, bool tensor_core_kernel, int key_splits = 0) {
  std::mt19937 rng(unsigned(c.head_dim * 31 + c.n_rows + c.sliding_window));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int n_keys = c.first_position + c.n_rows;
  auto random_bf16 = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (uint16_t& x : v) x = f32_to_bf16(normal(rng));
    return v;
  };
  const std::vector<uint16_t> q = random_bf16(size_t(c.n_rows) * q_dim);
  const std::vector<uint16_t> k = random_bf16(size_t(n_keys) * kv_dim), v = random_bf16(size_t(n_keys) * kv_dim);
  const float scale = 1.0f / std::sqrt(float(c.head_dim));

  // Blocks of 16 positions, the sequence's first block last in memory.
  constexpr int kBlockShift = 4, kBlockSize = 1 << kBlockShift;
  const int n_blocks = (n_keys + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> table(static_cast<size_t>(n_blocks));
  for (int b = 0; b < n_blocks; ++b) table[size_t(b)] = n_blocks - 1 - b;
  std::vector<uint16_t> paged_k(size_t(n_blocks) * kBlockSize * kv_dim), paged_v(paged_k.size());
  for (int key = 0; key < n_keys; ++key) {
    const size_t at = (size_t(table[size_t(key / kBlockSize)]) * kBlockSize + size_t(key % kBlockSize)) * size_t(kv_dim);
    std::copy_n(k.begin() + size_t(key) * kv_dim, kv_dim, paged_k.begin() + at);
    std::copy_n(v.begin() + size_t(key) * kv_dim, kv_dim, paged_v.begin() + at);
  }
  DeviceBuffer device_q = upload(q), device_k = upload(paged_k), device_v = upload(paged_v), device_table = upload(table);
  const PagedKv kv{device_table.get<int32_t>(), n_blocks, kBlockShift};
  DeviceBuffer device_out(q.size() * 2);
  CUDA_CHECK(cudaMemset(device_out.get(), 0xff, device_out.bytes()));
  if (tensor_core_kernel) {
    std::vector<PrefillTile> tiles;
    append_prefill_tiles(tiles, 0, c.n_rows, 0, c.first_position);
    DeviceBuffer device_tiles = upload(tiles);
    if (key_splits == 0) key_splits = prefill_attention_key_splits(int(tiles.size()), c.n_heads, n_keys);
    DeviceBuffer partial(size_t(prefill_attention_max_partial_floats(c.head_dim)) * sizeof(float));
    launch_prefill_attention({device_q.get<__nv_bfloat16>(), device_k.get<__nv_bfloat16>(), device_v.get<__nv_bfloat16>(),
                              kv, device_tiles.get<PrefillTile>(), int(tiles.size()), c.n_heads, c.n_kv_heads, c.head_dim,
                              c.sliding_window, scale, key_splits, partial.get<float>(), device_out.get<__nv_bfloat16>()},
                             nullptr);
  } else {
    std::vector<int32_t> positions(size_t(c.n_rows)), slots(size_t(c.n_rows), 0);
    for (int i = 0; i < c.n_rows; ++i) positions[size_t(i)] = c.first_position + i;
    DeviceBuffer device_positions = upload(positions), device_slots = upload(slots);
    const int n_splits = 3;
    DeviceBuffer partial(size_t(attention_partial_floats(c.n_rows, c.n_heads, n_splits, c.head_dim)) * 4);
    DeviceBuffer counters(size_t(c.n_rows) * size_t(c.n_heads) * sizeof(int));
    CUDA_CHECK(cudaMemset(counters.get(), 0, counters.bytes()));
    // Twice: the second launch only merges correctly if the first left every split counter at zero.
    for (int launch = 0; launch < 2; ++launch) {
      CUDA_CHECK(cudaMemset(device_out.get(), 0xff, device_out.bytes()));
      launch_attention({device_q.get<__nv_bfloat16>(), device_k.get<__nv_bfloat16>(), device_v.get<__nv_bfloat16>(),
                        device_positions.get<int32_t>(), device_slots.get<int32_t>(), nullptr, kv, c.n_rows, c.n_heads,
                        c.n_kv_heads, c.head_dim, c.sliding_window, scale, n_splits, partial.get<float>(), counters.get<int>(),
                        device_out.get<__nv_bfloat16>()},
                       nullptr);
    }
  }
  std::vector<uint16_t> out(q.size());
  CUDA_CHECK(cudaMemcpy(out.data(), device_out.get(), out.size() * 2, cudaMemcpyDeviceToHost));

  double error = 0, reference = 0;
  const int group = c.n_heads / c.n_kv_heads;
  for (int row = 0; row < c.n_rows; ++row) {
    const int position = c.first_position + row;
    const int first = c.sliding_window > 0 ? std::max(0, position - c.sliding_window + 1) : 0;
    for (int head = 0; head < c.n_heads; ++head) {
      const int kv_head = head / group;
      std::vector<double> scores;
      double max_score = -INFINITY;
      for (int key = first; key <= position; ++key) {
        double dot = 0;
        for (int d = 0; d < c.head_dim; ++d)
          dot += double(bf16_to_f32(q[size_t(row * q_dim + head * c.head_dim + d)])) *
                 bf16_to_f32(k[size_t(key * kv_dim + kv_head * c.head_dim + d)]);
        scores.push_back(dot * scale);
        max_score = std::max(max_score, scores.back());
      }
      double total = 0;
      for (double& score : scores) total += (score = std::exp(score - max_score));
      for (int d = 0; d < c.head_dim; ++d) {
        double expected = 0;
        for (int key = first; key <= position; ++key)
          expected += scores[size_t(key - first)] / total * bf16_to_f32(v[size_t(key * kv_dim + kv_head * c.head_dim + d)]);
        const double actual = bf16_to_f32(out[size_t(row * q_dim + head * c.head_dim + d)]);
        if (!std::isfinite(actual)) return INFINITY;  // an output left unwritten (NaN poison)
        error += (actual - expected) * (actual - expected);
        reference += expected * expected;
      }
    }
  }
  return std::sqrt(error / reference);
}

TEST(CudaAttention, TensorCorePrefillMatchesReference) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const Case& c : {Case{128, 8, 2, 100, 0, 0}, Case{128, 4, 4, 130, 37, 0}, Case{64, 8, 2, 150, 20, 48},
                        Case{64, 2, 1, 1, 70, 0}}) {
    EXPECT_LT(attention_error(c, true), 2e-2) << "head_dim " << c.head_dim << " rows " << c.n_rows << " from "
                                              << c.first_position << " window " << c.sliding_window;
  }
}

TEST(CudaAttention, TensorCorePrefillWithKeySplitsMatchesReference) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // A short run after a long context (a prompt's rest after a cached prefix) takes several splits.
  EXPECT_GT(prefill_attention_key_splits(1, 8, 1064), 1);
  EXPECT_EQ(prefill_attention_key_splits(8, 32, 512), 1) << "a 512-row prompt chunk fills the GPU without splits";
  EXPECT_LT(attention_error(Case{128, 8, 2, 64, 1000, 0}, true), 2e-2);
  // Forced splits: some splits hold no key an early row sees, or no tile at all (5 splits of 3
  // tiles); a sliding window.
  EXPECT_LT(attention_error(Case{128, 4, 4, 130, 37, 0}, true, 2), 2e-2);
  EXPECT_LT(attention_error(Case{64, 8, 2, 40, 100, 0}, true, 5), 2e-2);
  EXPECT_LT(attention_error(Case{64, 8, 2, 40, 500, 100}, true, 3), 2e-2);
}

TEST(CudaAttention, SplitKernelMatchesReference) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // Groups of 4, 7, 16, MHA; head widths of 16 to 256 lanes' worth, and 80 (lanes past the head
  // idle). Few rows take a block per query head or two; enough rows take blocks of 8 (a group of 7:
  // one unused; of 16: two blocks per KV head) and of 4.
  for (const Case& c : {Case{128, 8, 2, 5, 300, 0}, Case{64, 8, 2, 40, 20, 48}, Case{16, 4, 2, 3, 9, 0},
                        Case{128, 14, 2, 2, 200, 0}, Case{64, 16, 1, 3, 50, 0}, Case{256, 8, 1, 2, 40, 0},
                        Case{80, 4, 4, 2, 33, 0}, Case{128, 14, 2, 80, 30, 0}, Case{64, 16, 1, 64, 20, 0},
                        Case{256, 8, 1, 128, 10, 0}}) {
    EXPECT_LT(attention_error(c, false), 1e-2) << "head_dim " << c.head_dim << " heads " << c.n_heads << "/"
                                               << c.n_kv_heads << " rows " << c.n_rows;
  }
}

}  // namespace
}  // namespace shardlm::cuda
