#include "model/cpu_layer_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/cpu/attention.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/rmsnorm.h"
#include "ops/cpu/rope.h"
#include "model/routed_experts.h"
#include "ops/cpu/swiglu.h"

namespace shardlm {

CpuLayerOps::CpuLayerOps(const ModelConfig& config, const RopeFrequencies& rope, Communicator* comm,
                         std::span<const TokenRow> rows, KvCache& cache, std::vector<float>& residual)
    : config_(config), rope_(rope), comm_(comm), rows_(rows), cache_(cache), residual_(residual) {}

std::vector<float> CpuLayerOps::rms_norm(const WeightView& weight) const {
  std::vector<float> normed(residual_.size());
  cpu::rmsnorm(residual_.data(), n_rows(), config_.hidden_size, weight, config_.rms_norm_eps, normed.data());
  return normed;
}

std::vector<float> CpuLayerOps::qkv_rope(const std::vector<float>& normed, const Layer& layer, int il) const {
  const int64_t n = n_rows();
  const int head_dim = config_.head_dim;
  const int64_t q_dim = layer.q_dim();
  const int64_t kv_dim = layer.kv_dim();
  std::vector<float> q(size_t(n * q_dim)), k(size_t(n * kv_dim)), v(size_t(n * kv_dim));
  const cpu::MatmulProblem projections[] = {{normed.data(), n, layer.q_proj.weight, layer.q_proj.bias, q.data()},
                                            {normed.data(), n, layer.k_proj.weight, layer.k_proj.bias, k.data()},
                                            {normed.data(), n, layer.v_proj.weight, layer.v_proj.bias, v.data()}};
  cpu::matmul_group(projections);
  if (config_.qk_norm) {
    cpu::rmsnorm(q.data(), n * layer.n_heads, head_dim, layer.q_norm, config_.rms_norm_eps, q.data());
    cpu::rmsnorm(k.data(), n * layer.n_kv_heads, head_dim, layer.k_norm, config_.rms_norm_eps, k.data());
  }
  for (int64_t i = 0; i < n; ++i) {
    const TokenRow& row = rows_[size_t(i)];
    cpu::apply_rope(q.data() + i * q_dim, layer.n_heads, head_dim, row.position, rope_.inv_freq,
                    rope_.attention_scaling);
    cpu::apply_rope(k.data() + i * kv_dim, layer.n_kv_heads, head_dim, row.position, rope_.inv_freq,
                    rope_.attention_scaling);
    std::copy_n(k.data() + i * kv_dim, kv_dim, cache_.keys(il, row.sequence, row.position));
    std::copy_n(v.data() + i * kv_dim, kv_dim, cache_.values(il, row.sequence, row.position));
  }
  return q;
}

std::vector<float> CpuLayerOps::attention(const std::vector<float>& queries, const Layer& layer, int il) const {
  // Every row's keys are in the cache before any row attends, so a prompt's rows see each other
  // causally (row at position p reads positions <= p of its own sequence only).
  const int64_t n = n_rows();
  const int64_t q_dim = layer.q_dim();
  const cpu::AttentionShape shape{layer.n_heads, layer.n_kv_heads, config_.head_dim,
                                  1.0f / std::sqrt(float(config_.head_dim))};
  int64_t max_position = 0;
  for (const TokenRow& row : rows_) max_position = std::max(max_position, row.position);
  std::vector<float> attended(size_t(n * q_dim));
  // Work items are (row, KV head, part of its group): the query heads of a part read each key and
  // value row once together. A group is split only as far as it takes to give every thread an
  // item, which a decode step of few rows would not (Llama-3-8B: 8 KV heads of 4 query heads).
  const int group = cpu::heads_per_kv_head(shape);
  const int64_t n_groups = std::max<int64_t>(n * layer.n_kv_heads, 1);
  const int64_t wanted_parts = std::clamp<int64_t>((omp_get_max_threads() + n_groups - 1) / n_groups, 1, group);
  const int heads_per_part = int((group + wanted_parts - 1) / wanted_parts);
  const int parts = (group + heads_per_part - 1) / heads_per_part;  // none left empty
#pragma omp parallel
  {
    std::vector<float> scores(size_t(heads_per_part * (max_position + 1)));
#pragma omp for collapse(3) schedule(dynamic)
    for (int64_t i = 0; i < n; ++i) {
      for (int kv_head = 0; kv_head < layer.n_kv_heads; ++kv_head) {
        for (int part = 0; part < parts; ++part) {
          const int head_begin = kv_head * group + part * heads_per_part;
          const int head_end = std::min(head_begin + heads_per_part, (kv_head + 1) * group);
          const TokenRow& row = rows_[size_t(i)];
          const int64_t first =
              config_.sliding_window ? std::max<int64_t>(0, row.position - *config_.sliding_window + 1) : 0;
          cpu::attend_heads(queries.data() + i * q_dim, cache_.key_rows(il, row.sequence),
                            cache_.value_rows(il, row.sequence), first, row.position, shape,
                            head_begin, head_end, attended.data() + i * q_dim, scores.data());
        }
      }
    }
  }
  return attended;
}

void CpuLayerOps::add_projection(const std::vector<float>& input, const Linear& projection) {
  std::vector<float> projected(residual_.size());
  cpu::matmul(input.data(), n_rows(), projection.weight, WeightView{}, projected.data());
  if (projection.partial()) comm_->all_reduce_sum(projected.data(), projected.size());
  // A summed output's bias joins once, after the sum.
  const WeightView& bias = projection.bias;
  const int64_t dim = config_.hidden_size;
  for (size_t i = 0; i < residual_.size(); ++i)
    residual_[i] += projected[i] + (bias.present() ? bias.at(int64_t(i) % dim) : 0.0f);
}

std::vector<float> CpuLayerOps::gate_up_swiglu(const std::vector<float>& normed, const Layer& layer) const {
  return swiglu(normed.data(), n_rows(), layer.gate_proj, layer.up_proj);
}

cpu::ExpertRoutes CpuLayerOps::route(const std::vector<float>& normed, const SparseMoeWeights& moe) const {
  std::vector<float> logits(size_t(n_rows() * moe.num_experts()));
  cpu::matmul(normed.data(), n_rows(), moe.router.weight, WeightView{}, logits.data());
  return cpu::route_top_k(logits.data(), n_rows(), moe.num_experts(), moe.top_k, moe.norm_topk_prob);
}

void CpuLayerOps::add_experts(const std::vector<float>& normed, const cpu::ExpertRoutes& routes,
                              const SparseMoeWeights& moe) {
  const int64_t dim = config_.hidden_size;
  std::vector<float> experts_out(residual_.size(), 0.0f);
  add_routed_experts(normed.data(), routes, moe, experts_out.data());

  std::vector<float> shared_out;
  bool shared_partial = false;
  if (moe.shared_expert) {
    shared_out = run_expert(normed.data(), n_rows(), *moe.shared_expert);
    shared_partial = moe.shared_expert->down_proj.partial();
    std::vector<float> gate(static_cast<size_t>(n_rows()));
    cpu::matmul(normed.data(), n_rows(), moe.shared_expert_gate.weight, WeightView{}, gate.data());
    for (int64_t r = 0; r < n_rows(); ++r) {
      const float scale = 1.0f / (1.0f + std::exp(-gate[size_t(r)]));
      for (int64_t j = 0; j < dim; ++j) shared_out[size_t(r * dim + j)] *= scale;
    }
  }
  // Partial sums are reduced together when both parts are partial, each on its own otherwise.
  if (moe.shared_expert && shared_partial == moe.experts_partial) {
    for (size_t i = 0; i < experts_out.size(); ++i) experts_out[i] += shared_out[i];
    shared_out.clear();
  }
  if (moe.experts_partial) comm_->all_reduce_sum(experts_out.data(), experts_out.size());
  if (!shared_out.empty() && shared_partial) comm_->all_reduce_sum(shared_out.data(), shared_out.size());
  for (size_t i = 0; i < residual_.size(); ++i) residual_[i] += experts_out[i] + (shared_out.empty() ? 0.0f : shared_out[i]);
}

}  // namespace shardlm
