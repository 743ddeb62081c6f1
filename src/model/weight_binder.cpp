#include "model/weight_binder.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"

namespace shardlm {

WeightView WeightBinder::bind(const std::string& name, const std::vector<int64_t>& full_shape) const {
  const TpWeight* planned = tp_ ? &tp_->plan->weight(name) : nullptr;
  // A tied lm_head is planned as its own weight but read from the embedding table.
  const TensorInfo& tensor = checkpoint_.get(planned ? planned->source_name : name);
  if (tensor.shape != full_shape) {
    fail("{}: tensor {} has shape [{}], the config implies [{}]", tensor.file.string(), tensor.stored_name(),
         fmt::join(tensor.shape, ", "), fmt::join(full_shape, ", "));
  }
  if (!planned) {
    return {tensor.dtype, tensor.data, full_shape.size() == 2 ? full_shape[0] : 1, full_shape.back(), 0};
  }
  const std::vector<ShardView> views = shard_views(*planned, tp_->rank, tensor);
  if (views.size() != 1)
    fail("tp plan: {} is split into {} segments ({}); this model executes single-slice shards only", name, views.size(),
         planned->strategy_name);
  const ShardView& view = views[0];
  return {view.dtype, view.data, view.rows, view.cols, view.row_stride};
}

TpStrategy WeightBinder::strategy(const std::string& name) const {
  return tp_ ? tp_->plan->weight(name).strategy : TpStrategy::REPLICATE;
}

bool WeightBinder::holds(const std::string& name) const { return !tp_ || slice(name).held; }

void WeightBinder::require(const std::string& name, std::initializer_list<TpStrategy> executed) const {
  const TpStrategy used = strategy(name);
  if (std::find(executed.begin(), executed.end(), used) != executed.end()) return;
  std::string names;
  for (TpStrategy s : executed) names += (names.empty() ? "" : ", ") + std::string(strategy_traits(s).name);
  fail("tp plan: {} uses {}, which is not executed for this module (it runs {})", name, strategy_traits(used).name,
       names);
}

bool WeightBinder::all_reduces(const std::string& module) const {
  if (!tp_) return false;
  const std::vector<TpModule>& modules = tp_->plan->modules();
  return std::any_of(modules.begin(), modules.end(), [&](const TpModule& m) { return m.name == module; });
}

Linear bind_linear(const WeightBinder& bind, const std::string& module, int64_t out_features, int64_t in_features,
                   bool has_bias, std::initializer_list<TpStrategy> executed) {
  const std::string weight_name = module + ".weight";
  bind.require(weight_name, executed);
  Linear linear;
  linear.weight = bind.bind(weight_name, {out_features, in_features});
  if (has_bias) linear.bias = bind.bind(module + ".bias", {out_features});
  linear.collective = strategy_traits(bind.strategy(weight_name)).collective;
  return linear;
}

}  // namespace shardlm
