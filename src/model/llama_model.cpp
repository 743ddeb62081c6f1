// The forward pass, written to be read against transformers' modeling_llama.py:
//   h = x + o_proj(attention(rope(q_proj(norm(x))), rope(k_proj(...)), v_proj(...)))
//   out = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
// Weights stay in their stored dtype; activations and the KV cache are f32.
#include "model/llama_model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/rmsnorm.h"
#include "ops/cpu/rope.h"
#include "ops/cpu/swiglu.h"
#include "core/error.h"

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

KvCache LlamaModel::make_cache(int64_t capacity) const {
  std::vector<int64_t> kv_dims;
  for (const LlamaLayerWeights& layer : weights_.layers) kv_dims.push_back(layer.kv_dim());
  return KvCache(kv_dims, capacity);
}

KvCache LlamaModel::make_cache(int64_t capacity, std::span<const int> held_layers) const {
  std::vector<int64_t> kv_dims(weights_.layers.size(), 0);
  for (int il : held_layers) kv_dims.at(size_t(il)) = weights_.layers.at(size_t(il)).kv_dim();
  return KvCache(kv_dims, capacity);
}

void LlamaModel::keep_layers_in_memory(const std::vector<int>& layers) {
  for (int il : layers) {
    if (il < 0 || il >= config_.num_hidden_layers)
      fail("device map places layer {}, but the model has {} layers", il, config_.num_hidden_layers);
    LlamaLayerWeights& layer = weights_.layers[size_t(il)];
    for (WeightView* view :
         {&layer.attn_norm, &layer.q_proj.weight, &layer.k_proj.weight, &layer.v_proj.weight, &layer.o_proj.weight,
          &layer.q_proj.bias, &layer.k_proj.bias, &layer.v_proj.bias, &layer.o_proj.bias, &layer.q_norm, &layer.k_norm,
          &layer.mlp_norm, &layer.gate_proj.weight, &layer.up_proj.weight, &layer.down_proj.weight,
          &layer.gate_proj.bias, &layer.up_proj.bias, &layer.down_proj.bias}) {
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

void LlamaModel::add_projection(std::vector<float>& x, const float* input, int64_t n_rows,
                                const Linear& projection) const {
  std::vector<float> projected(x.size());
  cpu::matmul(input, n_rows, projection.weight, WeightView{}, projected.data());
  if (projection.partial()) tp_->comm->all_reduce_sum(projected.data(), projected.size());
  const WeightView& bias = projection.bias;
  const int64_t dim = config_.hidden_size;
  for (size_t i = 0; i < x.size(); ++i) x[i] += projected[i] + (bias.present() ? bias.at(int64_t(i) % dim) : 0.0f);
}

void LlamaModel::check_rows(std::span<const TokenRow> rows, std::span<KvCache* const> caches) const {
  for (const TokenRow& row : rows) {
    if (row.token < 0 || row.token >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (vocab_size {})", row.token, config_.vocab_size);
    if (row.sequence < 0 || size_t(row.sequence) >= caches.size())
      fail("token row names sequence {}, but only {} caches were given", row.sequence, caches.size());
    if (row.position < 0 || row.position >= caches[size_t(row.sequence)]->capacity())
      fail("position {} is beyond the KV cache capacity {} (raise --max-seq-len)", row.position,
           caches[size_t(row.sequence)]->capacity());
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

void LlamaModel::run_layers(std::span<const TokenRow> rows, std::span<KvCache* const> caches, std::vector<float>& x,
                            int first_layer, int end_layer) const {
  for (int il = first_layer; il < end_layer; ++il) {
    const LlamaLayerWeights& layer = weights_.layers[size_t(il)];
    attention_block(layer, il, rows, caches, x);
    mlp_block(layer, x, int64_t(rows.size()));
  }
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

std::vector<float> LlamaModel::forward(std::span<const TokenRow> rows, std::span<KvCache* const> caches) const {
  check_rows(rows, caches);
  std::vector<float> x = embed_rows(rows);
  run_layers(rows, caches, x, 0, config_.num_hidden_layers);
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

void LlamaModel::attention_block(const LlamaLayerWeights& layer, int il, std::span<const TokenRow> rows,
                                 std::span<KvCache* const> caches, std::vector<float>& x) const {
  const int64_t n_rows = int64_t(rows.size());
  const int64_t dim = config_.hidden_size;
  const int head_dim = config_.head_dim;
  const int n_heads = layer.n_heads;  // this rank's heads in this layer (all of them without TP)
  const int n_kv_heads = layer.n_kv_heads;
  const int64_t q_dim = layer.q_dim();
  const int64_t kv_dim = layer.kv_dim();
  const float eps = config_.rms_norm_eps;

  std::vector<float> normed(x.size());
  cpu::rmsnorm(x.data(), n_rows, dim, layer.attn_norm, eps, normed.data());
  std::vector<float> q(size_t(n_rows * q_dim)), k(size_t(n_rows * kv_dim)), v(size_t(n_rows * kv_dim));
  cpu::matmul(normed.data(), n_rows, layer.q_proj.weight, layer.q_proj.bias, q.data());
  cpu::matmul(normed.data(), n_rows, layer.k_proj.weight, layer.k_proj.bias, k.data());
  cpu::matmul(normed.data(), n_rows, layer.v_proj.weight, layer.v_proj.bias, v.data());
  if (config_.qk_norm) {
    cpu::rmsnorm(q.data(), n_rows * n_heads, head_dim, layer.q_norm, eps, q.data());
    cpu::rmsnorm(k.data(), n_rows * n_kv_heads, head_dim, layer.k_norm, eps, k.data());
  }
  for (int64_t i = 0; i < n_rows; ++i) {
    const TokenRow& row = rows[size_t(i)];
    cpu::apply_rope(q.data() + i * q_dim, n_heads, head_dim, row.position, rope_.inv_freq, rope_.attention_scaling);
    cpu::apply_rope(k.data() + i * kv_dim, n_kv_heads, head_dim, row.position, rope_.inv_freq,
                    rope_.attention_scaling);
    KvCache& cache = *caches[size_t(row.sequence)];
    std::copy_n(k.data() + i * kv_dim, kv_dim, cache.keys(il, row.position));
    std::copy_n(v.data() + i * kv_dim, kv_dim, cache.values(il, row.position));
  }

  // Every row's keys are in the cache before any row attends, so a prompt's rows see each other
  // causally (row at position p reads positions <= p of its own sequence only).
  const cpu::AttentionShape shape{n_heads, n_kv_heads, head_dim, 1.0f / std::sqrt(float(head_dim))};
  int64_t max_position = 0;
  for (const TokenRow& row : rows) max_position = std::max(max_position, row.position);
  std::vector<float> attended(size_t(n_rows * q_dim));
  // Work items are (row, KV head, part of its group): the query heads of a part read each key and
  // value row once together. A group is split only as far as it takes to give every thread an
  // item, which a decode step of few rows would not (Llama-3-8B: 8 KV heads of 4 query heads).
  const int group = cpu::heads_per_kv_head(shape);
  const int64_t n_groups = std::max<int64_t>(n_rows * n_kv_heads, 1);
  const int64_t wanted_parts = std::clamp<int64_t>((omp_get_max_threads() + n_groups - 1) / n_groups, 1, group);
  const int heads_per_part = int((group + wanted_parts - 1) / wanted_parts);
  const int parts = (group + heads_per_part - 1) / heads_per_part;  // none left empty
#pragma omp parallel
  {
    std::vector<float> scores(size_t(heads_per_part * (max_position + 1)));
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t i = 0; i < n_rows; ++i) {
      for (int kv_head = 0; kv_head < n_kv_heads; ++kv_head) {
        for (int part = 0; part < parts; ++part) {
          const int head_begin = kv_head * group + part * heads_per_part;
          const int head_end = std::min(head_begin + heads_per_part, (kv_head + 1) * group);
          const TokenRow& row = rows[size_t(i)];
          const KvCache& cache = *caches[size_t(row.sequence)];
          const int64_t first =
              config_.sliding_window ? std::max<int64_t>(0, row.position - *config_.sliding_window + 1) : 0;
          cpu::attend_heads(q.data() + i * q_dim, cache.keys(il), cache.values(il), first, row.position, shape,
                            head_begin, head_end, attended.data() + i * q_dim, scores.data());
        }
      }
    }
  }
  add_projection(x, attended.data(), n_rows, layer.o_proj);
}

void LlamaModel::mlp_block(const LlamaLayerWeights& layer, std::vector<float>& x, int64_t n_rows) const {
  const int64_t dim = config_.hidden_size;
  const int64_t ff_dim = layer.ff_dim();
  std::vector<float> normed(x.size());
  cpu::rmsnorm(x.data(), n_rows, dim, layer.mlp_norm, config_.rms_norm_eps, normed.data());
  std::vector<float> gate(size_t(n_rows * ff_dim)), up(size_t(n_rows * ff_dim));
  cpu::matmul(normed.data(), n_rows, layer.gate_proj.weight, layer.gate_proj.bias, gate.data());
  cpu::matmul(normed.data(), n_rows, layer.up_proj.weight, layer.up_proj.bias, up.data());
  cpu::silu_mul(gate.data(), up.data(), n_rows * ff_dim, gate.data());
  add_projection(x, gate.data(), n_rows, layer.down_proj);
}

}  // namespace shardlm
