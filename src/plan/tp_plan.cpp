// Plan resolution: parse the strategies, match patterns to weights the way Transformers does, then
// split every weight. Splits are computed in "units" so that attention projections split by whole
// heads (q_proj rows and o_proj columns by head_dim, k_proj/v_proj by KV head, with replication
// when there are fewer KV heads than ranks) and everything else by single rows or columns.
#include "plan/tp_plan.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "plan/device_map/model_layout.h"
#include "plan/expert_plan_entries.h"

namespace shardlm {
namespace {

std::vector<std::string_view> split_dots(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

bool is_layer_number(std::string_view segment) {
  return !segment.empty() && std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Transformers replaces every numeric path segment of a parameter name by "*" and looks the result
// up in the plan, so "*" stands for exactly one layer number; a key with explicit numbers matches
// only those layers.
bool segments_match(const std::vector<std::string_view>& pattern, const std::vector<std::string_view>& name) {
  if (pattern.size() != name.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == name[i]) continue;
    if (pattern[i] == "*" && is_layer_number(name[i])) continue;
    return false;
  }
  return true;
}

// Keys may be written for the base model ("layers.*.mlp.up_proj", as in base_model_tp_plan) or for
// the CausalLM model ("model.layers.*.mlp.up_proj", as in a tp_plan passed to from_pretrained).
bool key_matches(const std::string& pattern, const std::string& name) {
  const std::vector<std::string_view> name_parts = split_dots(name);
  if (segments_match(split_dots(pattern), name_parts)) return true;
  return !pattern.starts_with("model.") && segments_match(split_dots("model." + pattern), name_parts);
}

std::string module_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? std::string() : name.substr(0, dot);
}

std::string leaf_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

struct ParsedEntry {
  TpPlanEntry entry;
  TpStrategy strategy;
};

// One component of the split dimension: `count` units of `unit` elements each.
struct SplitPart {
  int64_t size = 0;
  int64_t unit = 1;
  int64_t count = 0;
  std::string what;            // "query heads", "KV heads", "rows", ... for messages
  bool may_replicate = false;  // KV heads
};

class PlanResolver {
 public:
  PlanResolver(const ModelConfig& config, const TpPlanSource& source, int tp_size)
      : config_(config), label_(source.automatic ? "tp plan" : "tp plan " + source.origin), tp_(tp_size) {}

  std::vector<ParsedEntry> parse_entries(const std::vector<TpPlanEntry>& written) const {
    const std::vector<TpPlanEntry> entries = config_.moe.present() ? per_expert_entries(written, label_) : written;
    std::vector<ParsedEntry> parsed;
    for (const TpPlanEntry& entry : entries) {
      const std::optional<TpStrategy> strategy = parse_strategy(entry.strategy);
      if (!strategy || (is_expert_strategy(*strategy) && !config_.moe.present())) {
        if (strategy || is_unsupported_transformers_strategy(entry.strategy)) {
          fail("{}: \"{}\": strategy \"{}\" is for mixture-of-experts or MLA layers, which {} does not have", label_,
               entry.pattern, entry.strategy, config_.architecture_name);
        }
        fail("{}: \"{}\": unknown strategy \"{}\" (known: {})", label_, entry.pattern, entry.strategy,
             fmt::join(strategy_names(), ", "));
      }
      parsed.push_back({entry, *strategy});
    }
    return parsed;
  }

  // Fills weight.strategy/pattern from the entries, checking every entry matches and no weight or
  // module is matched twice. Returns the order in which to split the weights: by plan entry, so the
  // first divisibility error is that of the first entry (the auto plans list attention first).
  std::vector<size_t> match(const std::vector<ParsedEntry>& entries, std::vector<TpWeight>& weights,
                            std::vector<TpModule>& modules) const {
    std::set<std::string> weight_modules;  // modules that own weights directly
    std::set<std::string> all_modules;     // and every module above them
    for (const TpWeight& weight : weights) {
      std::string module = module_of(weight.name);
      weight_modules.insert(module);
      for (; !module.empty(); module = module_of(module)) all_modules.insert(module);
    }

    std::vector<const ParsedEntry*> matched_by(weights.size(), nullptr);
    for (const ParsedEntry& parsed : entries) {
      const std::string& pattern = parsed.entry.pattern;
      if (strategy_traits(parsed.strategy).module_level) {
        match_module_entry(parsed, all_modules, weight_modules, modules);
        continue;
      }
      size_t n_matched = 0;
      for (size_t i = 0; i < weights.size(); ++i) {
        if (!key_matches(pattern, weights[i].name) && !key_matches(pattern, module_of(weights[i].name))) continue;
        ++n_matched;
        if (matched_by[i] != nullptr) {
          fail("{}: {} is matched by two patterns: \"{}\" ({}) and \"{}\" ({})", label_, weights[i].name,
               matched_by[i]->entry.pattern, matched_by[i]->entry.strategy, pattern, parsed.entry.strategy);
        }
        matched_by[i] = &parsed;
      }
      if (n_matched == 0) {
        for (const std::string& module : all_modules) {
          if (key_matches(pattern, module)) {
            fail("{}: pattern \"{}\" ({}) matches {}, which owns no weights; {} applies to the weights of a module",
                 label_, pattern, parsed.entry.strategy, module, parsed.entry.strategy);
          }
        }
        fail("{}: pattern \"{}\" ({}) matches no module of this model", label_, pattern, parsed.entry.strategy);
      }
    }
    for (size_t i = 0; i < weights.size(); ++i) {
      if (matched_by[i] == nullptr) continue;
      weights[i].strategy = matched_by[i]->strategy;
      weights[i].strategy_name = matched_by[i]->entry.strategy;
      weights[i].pattern = matched_by[i]->entry.pattern;
    }
    std::vector<size_t> order(weights.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto entry_position = [&](size_t i) {
      return matched_by[i] == nullptr ? entries.size() : size_t(matched_by[i] - entries.data());
    };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return entry_position(a) < entry_position(b); });
    return order;
  }

  void split(TpWeight& weight) const {
    const TpStrategyTraits& traits = strategy_traits(weight.strategy);
    const std::string module = module_of(weight.name);
    const std::string leaf = leaf_of(module);
    const int n_dims = int(weight.shape.size());
    if (n_dims < 1 || n_dims > 2) {
      fail("{}: {} ({}) has {} dimensions; tensor parallelism splits 1-D and 2-D weights", label_, weight.name,
           weight.strategy_name, n_dims);
    }
    int dim = -1;
    if (traits.weight_dim >= 0) dim = n_dims == 2 ? traits.weight_dim : (traits.shards_bias ? 0 : -1);

    const bool per_head_norm = leaf == "q_norm" || leaf == "k_norm";
    if (per_head_norm && dim >= 0) {
      fail("{}: {} ({}) is applied per head, so it can only be replicated", label_, module, weight.strategy_name);
    }
    const bool fused = leaf == "qkv_proj" || leaf == "gate_up_proj";
    if (fused && dim >= 0 && !traits.packed) {
      fail("{}: {} ({}) is a fused weight: use packed_colwise or packed_rowwise so each component is split separately",
           label_, module, weight.strategy_name);
    }

    weight.slices.assign(size_t(tp_), TensorSlice{});
    if (weight.strategy == TpStrategy::GROUPED_GEMM) {
      split_by_expert(weight);
      return;
    }
    if (dim < 0) {
      weight.placement = Placement::replicate();
      for (TensorSlice& slice : weight.slices) slice.local_shape = weight.shape;
      return;
    }
    weight.placement = Placement::shard(dim);
    const std::vector<SplitPart> parts = split_parts(weight, module, leaf, dim, traits.packed);
    for (int rank = 0; rank < tp_; ++rank) {
      TensorSlice& slice = weight.slices[size_t(rank)];
      slice.dim = dim;
      int64_t part_begin = 0;
      int64_t local_length = 0;
      for (const SplitPart& part : parts) {
        const auto [segment, block] = split_part(part, rank, traits, module, weight.strategy_name);
        slice.segments.push_back({part_begin + segment.offset, segment.length, segment.n_copies});
        local_length += segment.length;
        slice.block += block;
        part_begin += part.size;
      }
      slice.local_shape = weight.shape;
      slice.local_shape[size_t(dim)] = local_length;
    }
  }

 private:
  // grouped_gemm: rank r holds experts [r * E / tp, (r + 1) * E / tp) whole.
  void split_by_expert(TpWeight& weight) const {
    const std::vector<std::string_view> segments = split_dots(weight.name);
    const auto experts = std::find(segments.begin(), segments.end(), "experts");
    if (experts == segments.end() || experts + 1 == segments.end() || !is_layer_number(*(experts + 1)))
      fail("{}: {} ({}) is not an expert's weight; grouped_gemm splits a layer's mlp.experts by expert", label_,
           weight.name, weight.strategy_name);
    const int n_experts = config_.moe.num_experts;
    const std::string module = weight.name.substr(0, size_t(experts->data() + experts->size() - weight.name.data()));
    if (n_experts % tp_ != 0)
      fail("{}: {} ({}) splits {} experts over tp={}: not divisible", label_, module, weight.strategy_name, n_experts, tp_);
    const std::string_view index = *(experts + 1);
    int expert = -1;
    const auto [end, error] = std::from_chars(index.data(), index.data() + index.size(), expert);
    if (error != std::errc() || end != index.data() + index.size() || expert >= n_experts)
      fail("{}: {} names expert {}, but config.json has {} experts", label_, weight.name, index, n_experts);
    const int owner = expert / (n_experts / tp_);
    weight.placement = Placement::partial();
    for (int rank = 0; rank < tp_; ++rank) {
      TensorSlice& slice = weight.slices[size_t(rank)];
      slice.local_shape = weight.shape;
      if (rank == owner) continue;
      slice.held = false;
      slice.local_shape.assign(weight.shape.size(), 0);
    }
  }

  void match_module_entry(const ParsedEntry& parsed, const std::set<std::string>& all_modules,
                          const std::set<std::string>& weight_modules, std::vector<TpModule>& modules) const {
    const std::string& pattern = parsed.entry.pattern;
    size_t n_matched = 0;
    for (const std::string& module : all_modules) {
      if (!key_matches(pattern, module)) continue;
      // Its own weights would stay whole, so an all-reduce would add the same product tp times.
      if (weight_modules.contains(module)) {
        fail("{}: \"{}\" ({}) matches {}, which owns weights; {} belongs on a parent module whose children end in a "
             "partial sum (local_rowwise)",
             label_, pattern, parsed.entry.strategy, module, parsed.entry.strategy);
      }
      for (const TpModule& existing : modules) {
        if (existing.name == module) {
          fail("{}: {} is matched by two patterns: \"{}\" ({}) and \"{}\" ({})", label_, module, existing.pattern,
               existing.strategy_name, pattern, parsed.entry.strategy);
        }
      }
      modules.push_back({module, parsed.strategy, parsed.entry.strategy, pattern});
      ++n_matched;
    }
    if (n_matched == 0) fail("{}: pattern \"{}\" ({}) matches no module of this model", label_, pattern, parsed.entry.strategy);
  }

  std::vector<SplitPart> split_parts(const TpWeight& weight, const std::string& module, const std::string& leaf, int dim,
                                     bool packed) const {
    const bool attention = module.find(".self_attn.") != std::string::npos;
    const int64_t head_dim = config_.head_dim;
    const SplitPart query{int64_t(config_.num_attention_heads) * head_dim, head_dim, config_.num_attention_heads,
                          "query heads", false};
    const SplitPart kv{int64_t(config_.num_key_value_heads) * head_dim, head_dim, config_.num_key_value_heads, "KV heads",
                       true};
    const int64_t extent = weight.shape[size_t(dim)];

    std::vector<SplitPart> parts;
    if (attention && dim == 0 && leaf == "q_proj") {
      parts = {query};
    } else if (attention && dim == 0 && (leaf == "k_proj" || leaf == "v_proj")) {
      parts = {kv};
    } else if (attention && dim == 1 && leaf == "o_proj" && weight.shape.size() == 2) {
      parts = {query};
    } else if (attention && dim == 0 && leaf == "qkv_proj" && packed) {
      parts = {query, kv, kv};
    } else if (packed) {
      if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj" || leaf == "o_proj" || leaf == "gate_proj" ||
          leaf == "up_proj" || leaf == "down_proj") {
        fail("{}: {} ({}) is not a fused weight; use colwise or rowwise", label_, module, weight.strategy_name);
      }
      // Transformers' get_packed_weights: two equal components (gate and up).
      if (extent % 2 != 0) {
        fail("{}: {} ({}) has {} {} along dimension {}, which do not form 2 equal packed components", label_, module,
             weight.strategy_name, extent, dim == 0 ? "rows" : "columns", dim);
      }
      const SplitPart half{extent / 2, 1, extent / 2, dim == 0 ? "rows per component" : "columns per component", false};
      parts = {half, half};
    } else {
      const bool vocabulary = dim == 0 && (leaf == "embed_tokens" || leaf == "lm_head");
      parts = {{extent, 1, extent, vocabulary ? "vocabulary rows" : (dim == 0 ? "rows" : "columns"), false}};
    }

    int64_t implied = 0;
    for (const SplitPart& part : parts) implied += part.size;
    if (implied != extent) {
      fail("{}: {} has shape [{}], but config.json implies {} along dimension {}", label_, weight.name,
           fmt::join(weight.shape, ", "), implied, dim);
    }
    return parts;
  }

  // This rank's segment of one part, and its padded block length.
  std::pair<SliceSegment, int64_t> split_part(const SplitPart& part, int rank, const TpStrategyTraits& traits,
                                              const std::string& module, const std::string& strategy_name) const {
    if (part.count % tp_ == 0) {
      const int64_t per_rank = part.count / tp_ * part.unit;
      return {{rank * per_rank, per_rank, 1}, per_rank};
    }
    if (part.may_replicate && tp_ % part.count == 0) {
      const int copies = tp_ / int(part.count);
      return {{(rank / copies) * part.unit, part.unit, copies}, part.unit};
    }
    if (traits.may_split_unevenly && part.unit == 1) {
      // ceil-sized blocks, as torch.chunk: the all-gather pads every block to `chunk`.
      const int64_t chunk = (part.count + tp_ - 1) / tp_;
      const int64_t begin = std::min(rank * chunk, part.count);
      const int64_t end = std::min(begin + chunk, part.count);
      return {{begin, end - begin, 1}, chunk};
    }
    const std::string hint =
        part.may_replicate ? fmt::format(" (KV heads are replicated only when tp is a multiple of {})", part.count) : "";
    fail("{}: {} ({}) splits {} {} over tp={}: not divisible{}", label_, module, strategy_name, part.count, part.what, tp_,
         hint);
  }

  const ModelConfig& config_;
  std::string label_;
  int tp_;
};

}  // namespace

std::vector<WeightSpec> weight_specs(const Checkpoint& checkpoint) {
  std::vector<WeightSpec> specs;
  for (const auto& [name, tensor] : checkpoint.tensors()) specs.push_back({name, tensor.shape, tensor.dtype});
  return specs;
}

std::vector<WeightSpec> weight_specs(const ModelConfig& config, DType dtype) {
  std::vector<WeightSpec> specs;
  for (TensorShape& tensor : llama_tensor_shapes(config)) specs.push_back({std::move(tensor.name), std::move(tensor.shape), dtype});
  return specs;
}

int64_t TensorSlice::numel() const {
  int64_t n = 1;
  for (int64_t extent : local_shape) n *= extent;
  return n;
}

const TpWeight* TpPlan::find(const std::string& name) const {
  for (const TpWeight& weight : weights_) {
    if (weight.name == name) return &weight;
  }
  return nullptr;
}

const TpWeight& TpPlan::weight(const std::string& name) const {
  const TpWeight* weight = find(name);
  if (weight == nullptr) fail("tp plan: no weight named {} in this model", name);
  return *weight;
}

const TensorSlice& TpPlan::slice(const std::string& name, int rank) const {
  const TpWeight& found = weight(name);
  if (rank < 0 || rank >= tp_size_) fail("tp plan: rank {} outside tp={}", rank, tp_size_);
  return found.slices[size_t(rank)];
}

TpPlan resolve_tp_plan(const ModelConfig& config, const std::vector<WeightSpec>& weights, const TpPlanSource& source,
                       int tp_size) {
  if (tp_size < 1) fail("tp plan: tp size {} must be at least 1", tp_size);
  if (source.expert_parallel && !config.moe.present())
    fail("--enable-expert-parallel: {} has no experts to split", config.architecture_name);
  const PlanResolver resolver(config, source, tp_size);
  const std::vector<ParsedEntry> entries =
      resolver.parse_entries(source.automatic ? default_tp_plan(config, source.expert_parallel) : source.entries);

  TpPlan plan;
  plan.tp_size_ = tp_size;
  plan.origin_ = source.origin;
  bool has_lm_head = false;
  const WeightSpec* embedding = nullptr;
  for (const WeightSpec& spec : weights) {
    TpWeight weight;
    weight.name = spec.name;
    weight.source_name = spec.name;
    weight.shape = spec.shape;
    weight.dtype = spec.dtype;
    weight.strategy_name = std::string(strategy_traits(TpStrategy::REPLICATE).name);
    plan.weights_.push_back(std::move(weight));
    has_lm_head = has_lm_head || spec.name == "lm_head.weight";
    if (spec.name == "model.embed_tokens.weight") embedding = &spec;
  }
  // A tied head has no tensor of its own, but it is a module of the model and may be planned
  // differently from the embedding (Transformers' default splits both by vocabulary rows).
  if (config.tie_word_embeddings && !has_lm_head && embedding != nullptr) {
    TpWeight head;
    head.name = "lm_head.weight";
    head.source_name = embedding->name;
    head.shape = embedding->shape;
    head.dtype = embedding->dtype;
    head.strategy_name = std::string(strategy_traits(TpStrategy::REPLICATE).name);
    plan.weights_.push_back(std::move(head));
  }

  for (size_t i : resolver.match(entries, plan.weights_, plan.modules_)) resolver.split(plan.weights_[i]);
  return plan;
}

std::vector<ShardView> shard_views(const TpWeight& weight, int rank, const TensorInfo& source) {
  if (source.shape != weight.shape || source.dtype != weight.dtype || source.name != weight.source_name) {
    fail("tp plan: {} is planned as {} [{}] {}, the checkpoint has {} [{}] {}", weight.name, weight.source_name,
         fmt::join(weight.shape, ", "), dtype_name(weight.dtype), source.name, fmt::join(source.shape, ", "),
         dtype_name(source.dtype));
  }
  if (rank < 0 || rank >= int(weight.slices.size())) fail("tp plan: rank {} outside tp={}", rank, weight.slices.size());
  const TensorSlice& slice = weight.slices[size_t(rank)];
  if (!slice.held) fail("tp plan: rank {} does not hold {} ({})", rank, weight.name, weight.strategy_name);
  const size_t element = dtype_size(weight.dtype);
  const int64_t rows = weight.shape.size() == 2 ? weight.shape[0] : 1;
  const int64_t cols = weight.shape.back();
  if (slice.whole()) return {{weight.dtype, source.data, rows, cols, cols}};

  std::vector<ShardView> views;
  for (const SliceSegment& segment : slice.segments) {
    ShardView view{weight.dtype, nullptr, 0, 0, cols};
    if (weight.shape.size() == 1) {
      view.data = source.data + size_t(segment.offset) * element;
      view.rows = 1;
      view.cols = segment.length;
      view.row_stride = segment.length;
    } else if (slice.dim == 0) {
      view.data = source.data + size_t(segment.offset * cols) * element;
      view.rows = segment.length;
      view.cols = cols;
    } else {
      view.data = source.data + size_t(segment.offset) * element;
      view.rows = rows;
      view.cols = segment.length;
    }
    views.push_back(view);
  }
  return views;
}

}  // namespace shardlm
