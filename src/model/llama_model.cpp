// The forward pass, written to be read against transformers' modeling_llama.py:
//   h = x + o_proj(attention(rope(q_proj(norm(x))), rope(k_proj(...)), v_proj(...)))
//   out = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
// Weights stay in their stored dtype; activations and the KV cache are f32.
#include "model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/attention.h"
#include "backend/cpu/embedding.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/rmsnorm.h"
#include "backend/cpu/rope.h"
#include "backend/cpu/swiglu.h"
#include "core/error.h"

namespace shardlm {
namespace {

void add_in_place(std::vector<float>& x, const std::vector<float>& delta) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
}

}  // namespace

LlamaModel::LlamaModel(ModelConfig config, Checkpoint checkpoint)
    : config_(std::move(config)),
      checkpoint_(std::move(checkpoint)),
      weights_(bind_llama_weights(config_, checkpoint_)),
      rope_(compute_rope_frequencies(config_)) {}

LlamaModel LlamaModel::load(const std::filesystem::path& model_dir) {
  return LlamaModel(ModelConfig::from_dir(model_dir), Checkpoint::open(model_dir));
}

KvCache LlamaModel::make_cache(int64_t capacity) const {
  return KvCache(config_.num_hidden_layers, int64_t(config_.num_key_value_heads) * config_.head_dim, capacity);
}

std::vector<float> LlamaModel::forward(std::span<const TokenRow> rows, std::span<KvCache* const> caches) const {
  const int64_t n_rows = int64_t(rows.size());
  const int64_t dim = config_.hidden_size;
  std::vector<int32_t> tokens(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const TokenRow& row = rows[i];
    if (row.token < 0 || row.token >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (vocab_size {})", row.token, config_.vocab_size);
    if (row.sequence < 0 || size_t(row.sequence) >= caches.size())
      fail("token row names sequence {}, but only {} caches were given", row.sequence, caches.size());
    if (row.position < 0 || row.position >= caches[size_t(row.sequence)]->capacity())
      fail("position {} is beyond the KV cache capacity {} (raise --max-seq-len)", row.position,
           caches[size_t(row.sequence)]->capacity());
    tokens[i] = row.token;
  }

  std::vector<float> x(size_t(n_rows * dim));
  cpu::embed_tokens(weights_.embed_tokens, tokens, x.data());
  for (int il = 0; il < config_.num_hidden_layers; ++il) {
    const LlamaLayerWeights& layer = weights_.layers[size_t(il)];
    attention_block(layer, il, rows, caches, x);
    mlp_block(layer, x, n_rows);
  }

  // Only the rows that want logits go through the final norm and the (large) LM head.
  std::vector<float> last_hidden;
  for (int64_t i = 0; i < n_rows; ++i) {
    if (!rows[size_t(i)].wants_logits) continue;
    last_hidden.insert(last_hidden.end(), x.begin() + i * dim, x.begin() + (i + 1) * dim);
  }
  const int64_t n_wanted = int64_t(last_hidden.size()) / dim;
  cpu::rmsnorm(last_hidden.data(), n_wanted, dim, weights_.final_norm, config_.rms_norm_eps, last_hidden.data());
  std::vector<float> logits(size_t(n_wanted * config_.vocab_size));
  cpu::matmul(last_hidden.data(), n_wanted, weights_.lm_head, WeightView{}, logits.data());
  return logits;
}

void LlamaModel::attention_block(const LlamaLayerWeights& layer, int il, std::span<const TokenRow> rows,
                                 std::span<KvCache* const> caches, std::vector<float>& x) const {
  const int64_t n_rows = int64_t(rows.size());
  const int64_t dim = config_.hidden_size;
  const int head_dim = config_.head_dim;
  const int n_heads = config_.num_attention_heads;
  const int n_kv_heads = config_.num_key_value_heads;
  const int64_t q_dim = int64_t(n_heads) * head_dim;
  const int64_t kv_dim = int64_t(n_kv_heads) * head_dim;
  const float eps = config_.rms_norm_eps;

  std::vector<float> normed(x.size());
  cpu::rmsnorm(x.data(), n_rows, dim, layer.attn_norm, eps, normed.data());
  std::vector<float> q(size_t(n_rows * q_dim)), k(size_t(n_rows * kv_dim)), v(size_t(n_rows * kv_dim));
  cpu::matmul(normed.data(), n_rows, layer.q_proj, layer.q_bias, q.data());
  cpu::matmul(normed.data(), n_rows, layer.k_proj, layer.k_bias, k.data());
  cpu::matmul(normed.data(), n_rows, layer.v_proj, layer.v_bias, v.data());
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
#pragma omp parallel
  {
    std::vector<float> scores(size_t(max_position + 1));
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int64_t i = 0; i < n_rows; ++i) {
      for (int head = 0; head < n_heads; ++head) {
        const TokenRow& row = rows[size_t(i)];
        const KvCache& cache = *caches[size_t(row.sequence)];
        const int64_t first =
            config_.sliding_window ? std::max<int64_t>(0, row.position - *config_.sliding_window + 1) : 0;
        cpu::attend_one_head(q.data() + i * q_dim, cache.keys(il), cache.values(il), first, row.position, shape,
                             head, attended.data() + i * q_dim, scores.data());
      }
    }
  }
  std::vector<float> projected(x.size());
  cpu::matmul(attended.data(), n_rows, layer.o_proj, layer.o_bias, projected.data());
  add_in_place(x, projected);
}

void LlamaModel::mlp_block(const LlamaLayerWeights& layer, std::vector<float>& x, int64_t n_rows) const {
  const int64_t dim = config_.hidden_size;
  const int64_t ff_dim = config_.intermediate_size;
  std::vector<float> normed(x.size());
  cpu::rmsnorm(x.data(), n_rows, dim, layer.mlp_norm, config_.rms_norm_eps, normed.data());
  std::vector<float> gate(size_t(n_rows * ff_dim)), up(size_t(n_rows * ff_dim));
  cpu::matmul(normed.data(), n_rows, layer.gate_proj, layer.gate_bias, gate.data());
  cpu::matmul(normed.data(), n_rows, layer.up_proj, layer.up_bias, up.data());
  cpu::silu_mul(gate.data(), up.data(), n_rows * ff_dim, gate.data());
  std::vector<float> down(x.size());
  cpu::matmul(gate.data(), n_rows, layer.down_proj, layer.down_bias, down.data());
  add_in_place(x, down);
}

}  // namespace shardlm
