#include "plan/expert_plan_entries.h"

#include <optional>

#include "core/error.h"
#include "io/expert_tensors.h"
#include "plan/tp_plan_strategy.h"

namespace shardlm {
namespace {

using S = TpStrategy;

// The fused name's stem ("layers.*.mlp.experts") when `pattern` names a fused expert parameter.
bool strip_suffix(const std::string& pattern, std::string_view suffix, std::string& stem) {
  if (!pattern.ends_with(suffix)) return false;
  stem = pattern.substr(0, pattern.size() - suffix.size());
  return true;
}

}  // namespace

std::vector<TpPlanEntry> per_expert_entries(const std::vector<TpPlanEntry>& entries, const std::string& label) {
  std::vector<TpPlanEntry> rewritten;
  for (const TpPlanEntry& written : entries) {
    const std::string pattern = canonical_expert_path(written.pattern);
    std::string experts;
    const bool gate_up = strip_suffix(pattern, ".experts.gate_up_proj", experts);
    const bool down = !gate_up && strip_suffix(pattern, ".experts.down_proj", experts);
    const std::optional<S> strategy = parse_strategy(written.strategy);
    if ((!gate_up && !down) || !strategy) {
      rewritten.push_back({pattern, written.strategy});  // unknown strategies are named by the resolver
      continue;
    }
    experts += ".experts.*.";
    if (gate_up) {
      switch (*strategy) {
        case S::PACKED_COLWISE:
          rewritten.push_back({experts + "gate_proj", "colwise"});
          rewritten.push_back({experts + "up_proj", "colwise"});
          continue;
        case S::GROUPED_GEMM:
        case S::REPLICATE:
          rewritten.push_back({experts + "gate_proj", written.strategy});
          rewritten.push_back({experts + "up_proj", written.strategy});
          continue;
        default:
          fail("{}: \"{}\" ({}): mlp.experts.gate_up_proj is a fused weight, each expert's gate rows then its up rows: "
               "use packed_colwise so every rank gets matching halves, grouped_gemm to split it by expert, or replicate",
               label, written.pattern, written.strategy);
      }
    }
    switch (*strategy) {
      case S::ROWWISE:
      case S::LOCAL_ROWWISE:
      case S::GROUPED_GEMM:
      case S::REPLICATE:
        rewritten.push_back({experts + "down_proj", written.strategy});
        continue;
      default:
        fail("{}: \"{}\" ({}): mlp.experts.down_proj takes the intermediate features that packed_colwise splits: use "
             "rowwise (or local_rowwise), grouped_gemm, or replicate",
             label, written.pattern, written.strategy);
    }
  }
  return rewritten;
}

}  // namespace shardlm
