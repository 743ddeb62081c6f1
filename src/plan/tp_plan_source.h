// Where a tensor-parallel plan comes from: `--tp-plan auto` (the architecture's default, which is
// Transformers 5's plan for it) or `--tp-plan FILE.json` (a manual plan). A plan is an ordered list
// of (module pattern, strategy name) entries; nothing here checks the names or patterns against a
// model, resolve_tp_plan does, so that every plan error carries the model's numbers.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace shardlm {

struct TpPlanEntry {
  std::string pattern;   // e.g. "model.layers.*.self_attn.q_proj" or "layers.*.self_attn.q_proj"
  std::string strategy;  // as written, e.g. "colwise"
};

struct TpPlanSource {
  bool automatic = true;             // use default_tp_plan(config, expert_parallel)
  bool expert_parallel = false;      // automatic only: split experts by expert (--enable-expert-parallel)
  std::vector<TpPlanEntry> entries;  // the manual plan, when not automatic
  std::string origin;                // "auto", or the file the entries came from

  static TpPlanSource auto_plan(bool expert_parallel = false);
  // A JSON object mapping module patterns to strategy names, as Transformers' tp_plan argument.
  static TpPlanSource from_json(std::string_view json_text, const std::string& origin);
  static TpPlanSource from_file(const std::filesystem::path& path);
  // The --tp-plan argument: "auto", or the path of a JSON file; with --enable-expert-parallel
  // (auto only: a plan file says how it splits the experts).
  static TpPlanSource from_argument(const std::string& argument, bool expert_parallel = false);
};

// The plan Transformers 5 applies for tp_plan="auto" to this architecture, keys as they appear in
// the CausalLM model's _tp_plan: the config's base_model_tp_plan under "model.", the head entry
// {"lm_head": "colwise_gather_output"}, and, when the embeddings are tied,
// {"model.embed_tokens": "embedding_rowwise"} (PreTrainedConfig.__post_init__ adds it). For
// mixture-of-experts models with `expert_parallel`, the experts follow base_model_ep_plan instead
// (each rank holds E / tp whole experts; attention stays split by heads).
std::vector<TpPlanEntry> default_tp_plan(const ModelConfig& config, bool expert_parallel = false);

}  // namespace shardlm
