#include "plan/parameter_count.h"

#include <charconv>
#include <cmath>
#include <map>
#include <string_view>

namespace shardlm {
namespace {

// Layer il when `name` is one of layer il's experts ("model.layers.{il}.mlp.experts.{e}."), else -1.
int expert_layer(std::string_view name) {
  constexpr std::string_view kLayers = "model.layers.";
  if (!name.starts_with(kLayers) || name.find(".mlp.experts.") == std::string_view::npos) return -1;
  int il = -1;
  const char* first = name.data() + kLayers.size();
  const auto [end, error] = std::from_chars(first, name.data() + name.size(), il);
  return error == std::errc() && end != first && *end == '.' ? il : -1;
}

}  // namespace

ParameterCount count_parameters(const ModelConfig& config, const std::vector<WeightSpec>& weights) {
  ParameterCount count;
  struct LayerExperts {
    int64_t parameters = 0, bytes = 0;
  };
  std::map<int, LayerExperts> experts;
  for (const WeightSpec& weight : weights) {
    int64_t n = 1;
    for (int64_t extent : weight.shape) n *= extent;
    const int64_t bytes = n * int64_t(dtype_size(weight.dtype));
    count.total += n;
    count.total_bytes += bytes;
    const int il = config.moe.present() ? expert_layer(weight.name) : -1;
    if (il < 0) {
      count.active += n;
      count.active_bytes += bytes;
      continue;
    }
    experts[il].parameters += n;
    experts[il].bytes += bytes;
    count.expert_bytes += bytes;
  }
  // A token takes top_k of each layer's num_experts experts, all of one size.
  const int64_t n_experts = config.moe.num_experts, top_k = config.moe.num_experts_per_tok;
  for (const auto& [il, layer] : experts) {
    count.active += layer.parameters * top_k / n_experts;
    count.active_bytes += layer.bytes * top_k / n_experts;
    if (count.bytes_per_expert == 0) count.bytes_per_expert = layer.bytes / n_experts;
  }
  return count;
}

double decode_step_bytes(const ParameterCount& count, const MoeConfig& moe, int rows) {
  if (count.expert_bytes == 0) return double(count.active_bytes);
  const double chosen_share = double(moe.num_experts_per_tok) / double(moe.num_experts);
  const double expert_bytes = double(count.expert_bytes);
  return double(count.active_bytes) - expert_bytes * chosen_share + expert_bytes * (1.0 - std::pow(1.0 - chosen_share, rows));
}

}  // namespace shardlm
