// Plan sources. The default plans below are copied from Transformers 5: base_model_tp_plan in
// models/{llama,mistral,qwen2,qwen3,mixtral,qwen3_moe}/configuration_*.py, _tp_plan of the
// *ForCausalLM classes, and the tied-embedding entry PreTrainedConfig.__post_init__ adds. Llama,
// Mistral and Qwen2 share one plan; Qwen3 adds its q/k norms as replicated_with_grad_allreduce
// (replicated: they are applied per head, so every rank needs the whole head_dim vector for the
// heads it holds). Mixtral and Qwen3-MoE split each expert like an MLP (packed_colwise gate_up_proj,
// rowwise down_proj, moe_tp_experts summing the experts); Qwen2-MoE's configuration lists no
// expert entries in the version read, so it is given Qwen3-MoE's (its shared expert, like
// Transformers', stays whole). Expert parallelism is base_model_ep_plan (Qwen2-MoE's: ep_router,
// grouped_gemm for both expert tensors, moe_tp_experts), the same for all three.
#include "plan/tp_plan_source.h"

#include "core/error.h"
#include "io/json_fields.h"
#include "io/mapped_file.h"

namespace shardlm {

TpPlanSource TpPlanSource::auto_plan(bool expert_parallel) {
  return TpPlanSource{true, expert_parallel, {}, expert_parallel ? "auto (expert parallel)" : "auto"};
}

TpPlanSource TpPlanSource::from_json(std::string_view json_text, const std::string& origin) {
  const nlohmann::json root = parse_json_object(json_text, origin, "tp plan");
  TpPlanSource source{false, false, {}, origin};
  for (const auto& [pattern, strategy] : root.items()) {
    if (!strategy.is_string()) {
      fail("{}: tp plan entry \"{}\" must map to a strategy name, got {}", origin, pattern, describe_json(strategy));
    }
    if (pattern.empty()) fail("{}: tp plan has an empty module pattern", origin);
    source.entries.push_back({pattern, strategy.get<std::string>()});
  }
  if (source.entries.empty()) fail("{}: tp plan is empty", origin);
  return source;
}

TpPlanSource TpPlanSource::from_file(const std::filesystem::path& path) {
  const MappedFile file = MappedFile::open(path);
  const std::span<const std::byte> bytes = file.bytes();
  return from_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path.string());
}

TpPlanSource TpPlanSource::from_argument(const std::string& argument, bool expert_parallel) {
  if (argument == "auto") return auto_plan(expert_parallel);
  if (expert_parallel)
    fail("--enable-expert-parallel chooses the experts' split of --tp-plan auto; the plan {} says its own "
         "(grouped_gemm for experts split by expert)", argument);
  return from_file(argument);
}

std::vector<TpPlanEntry> default_tp_plan(const ModelConfig& config, bool expert_parallel) {
  std::vector<TpPlanEntry> plan = {
      {"model.layers.*.self_attn.q_proj", "colwise"},
      {"model.layers.*.self_attn.k_proj", "colwise"},
      {"model.layers.*.self_attn.v_proj", "colwise"},
      {"model.layers.*.self_attn.o_proj", "rowwise"},
  };
  // Transformers skips entries that match nothing; shardlm refuses them, so a model whose every
  // layer is sparse gets no dense-MLP entries, and one whose every layer is dense no expert entries.
  bool has_dense_mlp = false, has_experts = false;
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    has_dense_mlp |= !config.is_sparse_layer(layer);
    has_experts |= config.is_sparse_layer(layer);
  }
  if (has_dense_mlp) {
    plan.push_back({"model.layers.*.mlp.gate_proj", "colwise"});
    plan.push_back({"model.layers.*.mlp.up_proj", "colwise"});
    plan.push_back({"model.layers.*.mlp.down_proj", "rowwise"});
  }
  if (has_experts && expert_parallel) {
    plan.push_back({"model.layers.*.mlp.gate", "ep_router"});
    plan.push_back({"model.layers.*.mlp.experts.gate_up_proj", "grouped_gemm"});
    plan.push_back({"model.layers.*.mlp.experts.down_proj", "grouped_gemm"});
    plan.push_back({"model.layers.*.mlp.experts", "moe_tp_experts"});
  } else if (has_experts) {
    plan.push_back({"model.layers.*.mlp.experts.gate_up_proj", "packed_colwise"});
    plan.push_back({"model.layers.*.mlp.experts.down_proj", "rowwise"});
    plan.push_back({"model.layers.*.mlp.experts", "moe_tp_experts"});
  }
  if (config.qk_norm) {
    plan.push_back({"model.layers.*.self_attn.q_norm", "replicated_with_grad_allreduce"});
    plan.push_back({"model.layers.*.self_attn.k_norm", "replicated_with_grad_allreduce"});
  }
  if (config.tie_word_embeddings) plan.push_back({"model.embed_tokens", "embedding_rowwise"});
  plan.push_back({"lm_head", "colwise_gather_output"});
  return plan;
}

}  // namespace shardlm
