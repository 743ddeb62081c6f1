#include "backend/cuda/cuda_layer_ops.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/dtype.h"
#include "model/routed_experts.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/expert_mlp.h"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/gemv.h"
#include "ops/cuda/moe_routing.h"
#include "ops/cuda/qkv_rope.h"
#include "ops/cuda/rmsnorm.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

CudaLayerOps::CudaLayerOps(const ModelConfig& config, float attention_scaling, DeviceCommunicator* comm,
                           GpuWorkspace& gpu, const StepShape& step)
    : config_(config),
      attention_scaling_(attention_scaling),
      comm_(comm),
      gpu_(gpu),
      step_(step) {}

NormedRows CudaLayerOps::rms_norm(const bf16* weight) {
  if (step_.gemv) return {nullptr, weight};
  bf16* normed = gpu_.normed.get<bf16>();
  launch_add_rmsnorm(gpu_.residual.get<float>(), gpu_.pending_add, weight, config_.rms_norm_eps, step_.n_rows,
                     config_.hidden_size, nullptr, normed, gpu_.stream);
  gpu_.pending_add = nullptr;
  return {normed, nullptr};
}

const bf16* CudaLayerOps::qkv_rope(const NormedRows& normed, const GpuLayer& layer, int /*il: in layer.keys*/) {
  const int n = step_.n_rows;
  const int64_t qkv_dim = int64_t(layer.shape.n_heads + 2 * layer.shape.n_kv_heads) * config_.head_dim;
  const QkvRopeParams rope{gpu_.qkv.get<bf16>(), layer.qkv_bias,   layer.q_norm,        layer.k_norm,
                           config_.rms_norm_eps, gpu_.input(1),    gpu_.input(2),       gpu_.inv_freq.get<float>(),
                           attention_scaling_,   n,                layer.shape.n_heads,       layer.shape.n_kv_heads,
                           config_.head_dim,     gpu_.q.get<bf16>(), layer.keys,        layer.values,
                           gpu_.paged_kv()};
  if (step_.gemv) {
    GemvParams qkv{gpu_.residual.get(), normed.fold_norm, config_.rms_norm_eps, n, layer.qkv, qkv_dim,
                   config_.hidden_size, gpu_.qkv.get(), GemvOutput::BF16};
    qkv.rope = rope;
    // q/k norms need whole heads before the rotation, so they keep a kernel of their own.
    if (!layer.q_norm && !layer.k_norm) qkv.output = GemvOutput::QKV_ROPE;
    launch_gemv(qkv, gpu_.stream);
    if (qkv.output != GemvOutput::QKV_ROPE) launch_qkv_rope(rope, gpu_.stream);
  } else {
    gpu_.gemm->linear(normed.rows, n, layer.qkv, qkv_dim, config_.hidden_size, gpu_.qkv.get(), GemmOutput::BF16,
                      gpu_.stream);
    launch_qkv_rope(rope, gpu_.stream);
  }
  return gpu_.q.get<bf16>();
}

const bf16* CudaLayerOps::attention(const bf16* queries, const GpuLayer& layer, int /*il: in layer.keys*/) {
  const float scale = 1.0f / std::sqrt(float(config_.head_dim));
  bf16* out = gpu_.attention_out.get<bf16>();
  const int window = config_.sliding_window.value_or(0);
  const bool tiled = step_.n_prefill_tiles > 0;
  if (tiled)
    launch_prefill_attention({queries, layer.keys, layer.values, gpu_.paged_kv(),
                              reinterpret_cast<const PrefillTile*>(gpu_.input(kPrefillTilesInput)),
                              step_.n_prefill_tiles, layer.shape.n_heads, layer.shape.n_kv_heads, config_.head_dim, window,
                              scale, step_.n_key_splits, gpu_.prefill_partial.get<float>(), out},
                             gpu_.stream);
  if (!tiled || step_.n_single_rows > 0)
    launch_attention({queries, layer.keys, layer.values, gpu_.input(1), gpu_.input(2),
                      tiled ? gpu_.input(kSingleRowsInput) : nullptr, gpu_.paged_kv(),
                      tiled ? step_.n_single_rows : step_.n_rows, layer.shape.n_heads, layer.shape.n_kv_heads,
                      config_.head_dim, window, scale, step_.n_splits, gpu_.attention_partial.get<float>(),
                      gpu_.attention_split_counters.get<int>(), out},
                     gpu_.stream);
  return out;
}

void CudaLayerOps::add_projection(const bf16* input, const GpuLinear& projection) {
  const int n = step_.n_rows;
  const int64_t dim = config_.hidden_size;
  float* residual = gpu_.residual.get<float>();
  bf16* projected = gpu_.projected.get<bf16>();
  GemvParams gemv{input, nullptr, 0.0f, n, projection.weight, dim, projection.in_features, residual,
                  GemvOutput::ADD_TO_F32};
  // Attention's chain of latencies leaves memory idle: the o projection's weights stream meanwhile.
  gemv.weights_in_shared = input == gpu_.attention_out.get<bf16>();
  if (step_.gemv && !projection.partial) {
    launch_gemv(gemv, gpu_.stream);
    return;
  }
  gemv.y = projected;
  gemv.output = GemvOutput::BF16;
  if (step_.gemv)
    launch_gemv(gemv, gpu_.stream);
  else
    gpu_.gemm->linear(input, n, projection.weight, dim, projection.in_features, projected, GemmOutput::BF16,
                      gpu_.stream);
  // A rowwise projection's partial sums are summed over the ranks before they join the residual.
  if (projection.partial) comm_->all_reduce_sum(projected, size_t(n) * size_t(dim), DType::BF16, gpu_.stream);
  if (step_.gemv)
    launch_add_rmsnorm(residual, projected, nullptr, 0.0f, n, int(dim), nullptr, nullptr, gpu_.stream);
  else
    gpu_.pending_add = projected;
}

const bf16* CudaLayerOps::gate_up_swiglu(const NormedRows& normed, const GpuLayer& layer) {
  bf16* activated = gpu_.activated.get<bf16>();
  if (step_.gemv)
    launch_gemv({gpu_.residual.get(), normed.fold_norm, config_.rms_norm_eps, step_.n_rows, layer.gate_up,
                 layer.shape.ff_dim, config_.hidden_size, activated, GemvOutput::SWIGLU_BF16},
                gpu_.stream);
  else
    gpu_.gemm->gate_up_swiglu(normed.rows, step_.n_rows, layer.gate_up, layer.shape.ff_dim, config_.hidden_size,
                              gpu_.gate_up.get<bf16>(), activated, gpu_.stream);
  return activated;
}

GpuRoutes CudaLayerOps::route(const NormedRows& normed, const GpuMoe& moe) {
  const int n = step_.n_rows;
  const int64_t dim = config_.hidden_size;
  float* logits = gpu_.router_logits.get<float>();
  const bf16* rows = normed.rows;
  if (rows) {
    gpu_.gemm->linear(rows, n, moe.router, moe.shape.n_experts, dim, logits, GemmOutput::F32, gpu_.stream);
  } else {
    // A decode step's GEMVs fold the norm away, but the experts read the normalised rows: the
    // router's GEMV stores them as it makes them.
    bf16* made = gpu_.normed.get<bf16>();
    GemvParams router{gpu_.residual.get(), normed.fold_norm, config_.rms_norm_eps, n, moe.router, moe.shape.n_experts,
                      dim, logits, GemvOutput::F32};
    router.normed_out = made;
    router.weights_in_shared = true;  // a few rows of W, which arrive while the o projection runs
    launch_gemv(router, gpu_.stream);
    rows = made;
  }
  const ExpertShape& shape = moe.shape;
  const RouteParams routing{logits, n, shape.n_experts, shape.top_k, moe.normalize, gpu_.route_experts.get<int32_t>(),
                            gpu_.route_weights.get<float>()};
  // The CPU groups its own, and one row's expert kernels read its slots as they are.
  if (moe.host_experts || n == 1) {
    launch_route_top_k(routing, gpu_.stream);
    return {rows};
  }
  // The device's experts read the pairs grouped by expert (add_device_experts).
  launch_route_and_group(routing,
                         {routing.experts, n * shape.top_k, shape.n_experts, shape.first_expert,
                          shape.first_expert + shape.local_experts, gpu_.expert_offsets.get<int32_t>(),
                          gpu_.expert_pairs.get<int32_t>(), gpu_.expert_active.get<int32_t>()},
                         gpu_.stream);
  return {rows};
}

void CudaLayerOps::add_experts(const NormedRows& /*normed: routes.rows holds them*/, const GpuRoutes& routes,
                               const GpuMoe& moe) {
  const int n = step_.n_rows;
  const int64_t dim = config_.hidden_size;
  // Partial sums (the experts', a split shared expert's) gather in moe_out, are summed over the
  // ranks, then join the residual stream; a part every rank computes whole adds to it directly.
  float* residual = gpu_.residual.get<float>();
  float* partial = gpu_.moe_out.get<float>();
  const bool any_partial = moe.experts_partial || (moe.shared_gate_up && moe.shared_partial);
  if (any_partial) CUDA_CHECK(cudaMemsetAsync(partial, 0, size_t(n) * size_t(dim) * sizeof(float), gpu_.stream));
  if (moe.host_experts)
    add_host_experts(routes, moe);  // whole experts: a device map does not combine with tensor parallelism
  else
    add_device_experts(routes, moe, moe.experts_partial ? partial : residual);
  if (moe.shared_gate_up) {
    bf16* activated = gpu_.activated.get<bf16>();
    gpu_.gemm->gate_up_swiglu(routes.rows, n, moe.shared_gate_up, moe.shape.shared_ff, dim, gpu_.gate_up.get<bf16>(),
                              activated, gpu_.stream);
    bf16* shared_out = gpu_.projected.get<bf16>();
    gpu_.gemm->linear(activated, n, moe.shared_down, dim, moe.shape.shared_ff, shared_out, GemmOutput::BF16, gpu_.stream);
    launch_shared_expert_add({routes.rows, moe.shared_gate, shared_out, n, int(dim), moe.shared_partial ? partial : residual},
                             gpu_.stream);
  }
  if (!any_partial) return;
  comm_->all_reduce_sum(partial, size_t(n) * size_t(dim), DType::F32, gpu_.stream);
  launch_add_f32(residual, partial, int64_t(n) * dim, gpu_.stream);
}

void CudaLayerOps::add_device_experts(const GpuRoutes& routes, const GpuMoe& moe, float* out) {
  const int n = step_.n_rows;
  const ExpertShape& shape = moe.shape;
  const int end_expert = shape.first_expert + shape.local_experts;
  const int32_t* experts = gpu_.route_experts.get<int32_t>();
  ExpertMlpParams mlp;
  mlp.x = routes.rows;
  mlp.n_rows = n;
  mlp.top_k = shape.top_k;
  mlp.hidden = config_.hidden_size;
  mlp.ff = int(shape.expert_ff);
  mlp.n_experts = shape.n_experts;
  mlp.first_expert = shape.first_expert;
  mlp.n_local_experts = shape.local_experts;
  mlp.offsets = gpu_.expert_offsets.get<int32_t>();
  mlp.pairs = gpu_.expert_pairs.get<int32_t>();
  mlp.active = gpu_.expert_active.get<int32_t>();
  mlp.gate_up = moe.experts_gate_up;
  mlp.down = moe.experts_down;
  mlp.activated = gpu_.expert_activated.get<bf16>();
  mlp.expert_out = gpu_.expert_out.get<float>();
  if (step_.grouped_experts) {
    gpu_.grouped_experts->run({mlp, gpu_.route_weights.get<float>(), experts, gpu_.expert_rows.get<bf16>(),
                               gpu_.expert_gate_up.get<bf16>(), gpu_.expert_positions.get<int32_t>(), out},
                              gpu_.stream);
    return;
  }
  launch_routed_experts(mlp,
                        {gpu_.expert_out.get<float>(), gpu_.route_weights.get<float>(), experts, n, shape.top_k,
                         config_.hidden_size, shape.first_expert, end_expert, out},
                        gpu_.stream);
}

void CudaLayerOps::add_host_experts(const GpuRoutes& routes, const GpuMoe& moe) {
  const int n = step_.n_rows;
  const int64_t dim = config_.hidden_size;
  const size_t pairs = size_t(n) * size_t(moe.shape.top_k);
  const size_t values = size_t(n) * size_t(dim);
  CUDA_CHECK(cudaMemcpyAsync(gpu_.host_expert_rows.get(), routes.rows, values * sizeof(bf16), cudaMemcpyDeviceToHost,
                             gpu_.stream));
  CUDA_CHECK(cudaMemcpyAsync(gpu_.host_expert_choices.get(), gpu_.route_experts.get(), pairs * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, gpu_.stream));
  CUDA_CHECK(cudaMemcpyAsync(gpu_.host_expert_weights.get(), gpu_.route_weights.get(), pairs * sizeof(float),
                             cudaMemcpyDeviceToHost, gpu_.stream));
  // Also waits for the previous layer's sum to have left host_expert_out.
  const auto wait_start = std::chrono::steady_clock::now();
  CUDA_CHECK(cudaStreamSynchronize(gpu_.stream));
  const auto compute_start = std::chrono::steady_clock::now();
  std::vector<float> rows(values);
  const uint16_t* bits = gpu_.host_expert_rows.get<uint16_t>();
  std::transform(bits, bits + values, rows.begin(), bf16_to_f32);
  cpu::ExpertRoutes chosen;
  chosen.top_k = moe.shape.top_k;
  chosen.experts.assign(gpu_.host_expert_choices.get<int32_t>(), gpu_.host_expert_choices.get<int32_t>() + pairs);
  chosen.weights.assign(gpu_.host_expert_weights.get<float>(), gpu_.host_expert_weights.get<float>() + pairs);
  float* sum = gpu_.host_expert_out.get<float>();
  std::fill_n(sum, values, 0.0f);
  add_routed_experts(rows.data(), chosen, *moe.host_experts, sum);
  if (n == 1) {
    HostExpertTimes& times = gpu_.host_expert_times;
    ++times.one_row_calls;
    times.wait_seconds += std::chrono::duration<double>(compute_start - wait_start).count();
    times.compute_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - compute_start).count();
  }
  float* device_sum = gpu_.moe_out.get<float>();
  CUDA_CHECK(cudaMemcpyAsync(device_sum, sum, values * sizeof(float), cudaMemcpyHostToDevice, gpu_.stream));
  launch_add_f32(gpu_.residual.get<float>(), device_sum, int64_t(values), gpu_.stream);
}

}  // namespace shardlm::cuda
