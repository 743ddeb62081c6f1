// Plan sources. The default plans below are copied from Transformers 5: base_model_tp_plan in
// models/{llama,mistral,qwen2,qwen3}/configuration_*.py, _tp_plan of the *ForCausalLM classes, and
// the tied-embedding entry PreTrainedConfig.__post_init__ adds. Llama, Mistral and Qwen2 share one
// plan; Qwen3 adds its q/k norms as replicated_with_grad_allreduce (replicated: they are applied
// per head, so every rank needs the whole head_dim vector for the heads it holds).
#include "plan/tp_plan_source.h"

#include "core/error.h"
#include "io/json_fields.h"
#include "io/mapped_file.h"

namespace shardlm {

TpPlanSource TpPlanSource::auto_plan() { return TpPlanSource{true, {}, "auto"}; }

TpPlanSource TpPlanSource::from_json(std::string_view json_text, const std::string& origin) {
  const nlohmann::json root = parse_json_object(json_text, origin, "tp plan");
  TpPlanSource source{false, {}, origin};
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

TpPlanSource TpPlanSource::from_argument(const std::string& argument) {
  if (argument == "auto") return auto_plan();
  return from_file(argument);
}

std::vector<TpPlanEntry> default_tp_plan(const ModelConfig& config) {
  std::vector<TpPlanEntry> plan = {
      {"model.layers.*.self_attn.q_proj", "colwise"},
      {"model.layers.*.self_attn.k_proj", "colwise"},
      {"model.layers.*.self_attn.v_proj", "colwise"},
      {"model.layers.*.self_attn.o_proj", "rowwise"},
      {"model.layers.*.mlp.gate_proj", "colwise"},
      {"model.layers.*.mlp.up_proj", "colwise"},
      {"model.layers.*.mlp.down_proj", "rowwise"},
  };
  if (config.arch == ModelArch::QWEN3) {
    plan.push_back({"model.layers.*.self_attn.q_norm", "replicated_with_grad_allreduce"});
    plan.push_back({"model.layers.*.self_attn.k_norm", "replicated_with_grad_allreduce"});
  }
  if (config.tie_word_embeddings) plan.push_back({"model.embed_tokens", "embedding_rowwise"});
  plan.push_back({"lm_head", "colwise_gather_output"});
  return plan;
}

}  // namespace shardlm
