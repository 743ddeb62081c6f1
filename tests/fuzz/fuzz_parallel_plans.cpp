// libFuzzer target for the parallelism options users write: each input is parsed as a memory
// string (--max-memory, --devices), as an explicit device map (--device-map FILE.json) and as a
// manual tensor-parallel plan (--tp-plan FILE.json), resolved against a small mixture-of-experts
// model over two ranks (expert names are rewritten, experts split by expert). Only shardlm::Error
// may come out.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "plan/device_map/device_budget.h"
#include "plan/device_map/explicit_map.h"
#include "plan/memory_size.h"
#include "io/model_config.h"
#include "plan/tp_plan.h"
#include "plan/tp_plan_source.h"

namespace {

// Qwen3-MoE: 2 layers (the second dense), 4 experts of 8, 2 query and 2 KV heads of 8.
const shardlm::ModelConfig& moe_config() {
  static const shardlm::ModelConfig config = shardlm::ModelConfig::parse(
      R"({"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 16, "intermediate_size": 24,
          "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 8,
          "vocab_size": 32, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
          "mlp_only_layers": [1]})",
      "config.json");
  return config;
}

const std::vector<shardlm::WeightSpec>& moe_weights() {
  static const std::vector<shardlm::WeightSpec> weights = shardlm::weight_specs(moe_config(), shardlm::DType::BF16);
  return weights;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    shardlm::parse_memory_size(text, "--max-memory");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::parse_memory_entries(text, "--max-memory");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::parse_explicit_device_map(text, "map.json");
  } catch (const shardlm::Error&) {
  }
  try {
    const shardlm::TpPlanSource source = shardlm::TpPlanSource::from_json(text, "plan.json");
    shardlm::resolve_tp_plan(moe_config(), moe_weights(), source, 2);
  } catch (const shardlm::Error&) {
  }
  return 0;
}
