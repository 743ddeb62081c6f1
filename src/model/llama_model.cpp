// The CPU forward pass: the embedding, decoder_layer (model/decoder_layer.h) over CpuLayerOps for
// every layer, then the final norm and LM head. Weights stay in their stored dtype; activations
// and the KV cache are f32.
#include "model/llama_model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/cpu_layer_ops.h"
#include "model/decoder_layer.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/rmsnorm.h"

namespace shardlm {

LlamaModel::LlamaModel(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint,
                       std::optional<TensorParallelRank> tp)
    : config_(std::move(config)),
      checkpoint_(std::move(checkpoint)),
      tp_(tp),
      weights_(bind_llama_weights(config_, *checkpoint_, tp_ ? &*tp_ : nullptr)),
      rope_(compute_rope_frequencies(config_)) {}

LlamaModel LlamaModel::load(const std::filesystem::path& model_dir) {
  return LlamaModel(ModelConfig::from_dir(model_dir), std::make_shared<const Checkpoint>(Checkpoint::open(model_dir)));
}

KvCache LlamaModel::make_cache(const KvCacheShape& shape) const {
  std::vector<int> every_layer(weights_.layers.size());
  for (size_t il = 0; il < every_layer.size(); ++il) every_layer[il] = int(il);
  return make_cache(shape, every_layer);
}

KvCache LlamaModel::make_cache(const KvCacheShape& shape, std::span<const int> held_layers) const {
  std::vector<int64_t> kv_dims(weights_.layers.size(), 0);
  for (int il : held_layers) kv_dims.at(size_t(il)) = weights_.layers.at(size_t(il)).kv_dim();
  return KvCache(kv_dims, shape);
}

KvCache LlamaModel::make_whole_cache(int sequences, int64_t max_seq_len) const {
  KvCache cache = make_cache(KvCacheShape::whole_sequences(sequences, max_seq_len));
  cache.assign_whole_sequences();
  return cache;
}

void LlamaModel::keep_layers_in_memory(const std::vector<int>& layers) {
  for (int il : layers) {
    if (il < 0 || il >= config_.num_hidden_layers)
      fail("device map places layer {}, but the model has {} layers", il, config_.num_hidden_layers);
    LlamaLayerWeights& layer = weights_.layers[size_t(il)];
    for (WeightView* view : layer_views(layer)) {
      if (!view->present()) continue;
      const size_t row_bytes = size_t(view->cols) * dtype_size(view->dtype);
      auto copy = std::make_unique<std::byte[]>(row_bytes * size_t(view->rows));
      const std::byte* source = static_cast<const std::byte*>(view->data);
      for (int64_t row = 0; row < view->rows; ++row)
        std::memcpy(copy.get() + size_t(row) * row_bytes, source + size_t(row * view->stride()) * dtype_size(view->dtype),
                    row_bytes);
      view->data = copy.get();
      view->row_stride = 0;
      resident_copies_.push_back(std::move(copy));
    }
  }
}

void LlamaModel::embed(std::span<const int32_t> tokens, float* out) const {
  const Embedding& embedding = weights_.embed_tokens;
  if (embedding.collective != TpCollective::ALL_REDUCE) {
    cpu::embed_tokens(embedding.table, tokens, out);
    return;
  }
  // Vocabulary-parallel: each rank fills the rows of the tokens in its range, zeros elsewhere,
  // and the all-reduce assembles every row.
  const int64_t dim = config_.hidden_size;
  std::fill(out, out + int64_t(tokens.size()) * dim, 0.0f);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t local = tokens[i] - embedding.vocab_begin;
    if (local >= 0 && local < embedding.table.rows) embedding.table.row_to_f32(local, 0, dim, out + int64_t(i) * dim);
  }
  tp_->comm->all_reduce_sum(out, tokens.size() * size_t(dim));
}

std::vector<float> LlamaModel::lm_head_logits(const std::vector<float>& normed, int64_t n_rows) const {
  const Linear& head = weights_.lm_head;
  const int64_t vocab = config_.vocab_size;
  std::vector<float> logits(size_t(n_rows * vocab));
  if (head.collective != TpCollective::ALL_GATHER) {
    cpu::matmul(normed.data(), n_rows, head.weight, WeightView{}, logits.data());
    return logits;
  }
  // Each rank computes its vocabulary block (padded to head_block for uneven splits); the
  // all-gather stacks the blocks rank by rank, and each row is reassembled from them.
  const int64_t local = head.out_features();
  const int64_t block = head.gather_block;
  std::vector<float> mine(size_t(n_rows * block), 0.0f), local_logits(size_t(n_rows * local));
  cpu::matmul(normed.data(), n_rows, head.weight, WeightView{}, local_logits.data());
  for (int64_t row = 0; row < n_rows; ++row)
    std::copy_n(local_logits.data() + row * local, local, mine.data() + row * block);
  const int n_ranks = tp_->comm->size();
  std::vector<float> gathered(size_t(n_ranks) * mine.size());
  tp_->comm->all_gather(mine.data(), gathered.data(), mine.size());
  for (int rank = 0; rank < n_ranks; ++rank) {
    const int64_t begin = int64_t(rank) * block;
    const int64_t count = std::min(block, vocab - begin);
    for (int64_t row = 0; row < n_rows && count > 0; ++row)
      std::copy_n(gathered.data() + (int64_t(rank) * n_rows + row) * block, count, logits.data() + row * vocab + begin);
  }
  return logits;
}

void LlamaModel::check_rows(std::span<const TokenRow> rows, const KvCache& cache) const {
  for (const TokenRow& row : rows) {
    if (row.token < 0 || row.token >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (vocab_size {})", row.token, config_.vocab_size);
    if (row.sequence < 0 || row.sequence >= cache.tables().shape().sequences)
      fail("token row names sequence {}, but the KV cache has {} slots", row.sequence, cache.tables().shape().sequences);
    if (row.position < 0 || row.position >= cache.capacity(row.sequence))
      fail("position {} is beyond the {} positions sequence {} holds in the KV cache (raise --max-seq-len)",
           row.position, cache.capacity(row.sequence), row.sequence);
  }
}

std::vector<float> LlamaModel::embed_rows(std::span<const TokenRow> rows) const {
  std::vector<int32_t> tokens(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].token < 0 || rows[i].token >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (vocab_size {})", rows[i].token, config_.vocab_size);
    tokens[i] = rows[i].token;
  }
  std::vector<float> x(rows.size() * size_t(config_.hidden_size));
  embed(tokens, x.data());
  return x;
}

void LlamaModel::run_layers(std::span<const TokenRow> rows, KvCache& cache, std::vector<float>& x,
                            int first_layer, int end_layer) const {
  CpuLayerOps ops(config_, rope_, tp_ ? tp_->comm : nullptr, rows, cache, x);
  for (int il = first_layer; il < end_layer; ++il) decoder_layer(ops, weights_.layers[size_t(il)], il);
}

std::vector<float> LlamaModel::head_logits(std::span<const TokenRow> rows, const std::vector<float>& x) const {
  // Only the rows that want logits go through the final norm and the (large) LM head.
  const int64_t dim = config_.hidden_size;
  std::vector<float> last_hidden;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].wants_logits) continue;
    last_hidden.insert(last_hidden.end(), x.begin() + int64_t(i) * dim, x.begin() + int64_t(i + 1) * dim);
  }
  const int64_t n_wanted = int64_t(last_hidden.size()) / dim;
  cpu::rmsnorm(last_hidden.data(), n_wanted, dim, weights_.final_norm, config_.rms_norm_eps, last_hidden.data());
  return lm_head_logits(last_hidden, n_wanted);
}

std::vector<float> LlamaModel::forward(std::span<const TokenRow> rows, KvCache& cache) const {
  check_rows(rows, cache);
  std::vector<float> x = embed_rows(rows);
  run_layers(rows, cache, x, 0, config_.num_hidden_layers);
  return head_logits(rows, x);
}

void LlamaModel::use_weights(LlamaWeights weights) {
  const auto numel = [](const WeightView& view) { return view.present() ? view.numel() : 0; };
  const auto same = [&](const WeightView& a, const WeightView& b, std::string_view what) {
    if (numel(a) != numel(b)) fail("replacement weights for {} have {} elements, expected {}", what, numel(b), numel(a));
  };
  if (weights.layers.size() != weights_.layers.size())
    fail("replacement weights have {} layers, expected {}", weights.layers.size(), weights_.layers.size());
  for (size_t il = 0; il < weights_.layers.size(); ++il) {
    const LlamaLayerWeights& now = weights_.layers[il];
    const LlamaLayerWeights& replacement = weights.layers[il];
    same(now.q_proj.weight, replacement.q_proj.weight, "q_proj");
    same(now.gate_proj.weight, replacement.gate_proj.weight, "gate_proj");
    same(now.down_proj.weight, replacement.down_proj.weight, "down_proj");
    if (!same_layer_split(now, replacement))
      fail("replacement weights for model.layers.{} are split differently ({} heads, expected {})", il,
           replacement.n_heads, now.n_heads);
  }
  same(weights_.lm_head.weight, weights.lm_head.weight, "lm_head");
  weights_ = std::move(weights);
}

}  // namespace shardlm
