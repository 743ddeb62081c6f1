// Plain fixed-width text: numbers right-aligned in binary units, so columns of GiB line up.
#include "plan/device_map/plan_report.h"

#include <algorithm>

#include <fmt/format.h>

#include "plan/memory_size.h"

namespace shardlm {
namespace {

std::string short_name(const std::string& module) {
  if (module == "model.embed_tokens") return "embed";
  if (module == "model.norm") return "norm";
  if (module == "lm_head") return "head";
  return module;
}

std::string optional_size(const std::optional<int64_t>& bytes) {
  return bytes ? format_memory_size(*bytes) : "unlimited";
}

// Rows of cells; `align` has one letter per column, 'l' for left-aligned text, 'r' for numbers.
std::string format_table(const std::vector<std::vector<std::string>>& rows, std::string_view align) {
  std::vector<size_t> widths;
  for (const std::vector<std::string>& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string text;
  for (const std::vector<std::string>& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      line += align[c] == 'l' ? fmt::format("{:<{}}", row[c], widths[c]) : fmt::format("{:>{}}", row[c], widths[c]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

}  // namespace

nlohmann::json device_plan_to_json(const DevicePlan& plan) {
  nlohmann::json devices = nlohmann::json::array();
  for (const DeviceUsage& usage : plan.devices) {
    devices.push_back({
        {"device", usage.device.name()},
        {"layers", format_layer_ranges(usage.layers)},
        {"modules", usage.other_modules},
        {"weight_bytes", usage.weight_bytes},
        {"kv_cache_bytes", usage.kv_cache_bytes},
        {"activation_bytes", usage.activation_bytes},
        {"staging_bytes", usage.staging_bytes},
        {"total_bytes", usage.total_bytes()},
        {"budget_bytes", usage.budget_bytes ? nlohmann::json(*usage.budget_bytes) : nlohmann::json(nullptr)},
        {"headroom_bytes", usage.headroom_bytes() ? nlohmann::json(*usage.headroom_bytes()) : nlohmann::json(nullptr)},
        {"budget_source", usage.budget_source},
    });
  }
  nlohmann::json modules = nlohmann::json::array();
  nlohmann::json device_map = nlohmann::json::object();
  for (const ModulePlacement& module : plan.modules) {
    modules.push_back({{"name", module.name},
                       {"device", module.device.name()},
                       {"weight_bytes", module.weight_bytes},
                       {"kv_cache_bytes", module.kv_cache_bytes},
                       {"reason", module.reason}});
    device_map[module.name] = module.device.name();
  }
  return {
      {"strategy", strategy_name(plan.strategy)},
      {"applied_strategy", strategy_name(plan.applied)},
      {"max_seq_len", plan.max_seq_len},
      {"batch", plan.batch},
      {"notes", plan.notes},
      {"devices", devices},
      {"offload_gpu", plan.placement.offload_gpu ? nlohmann::json(plan.placement.offload_gpu->name())
                                                 : nlohmann::json(nullptr)},
      {"modules", modules},
      {"device_map", device_map},
      {"cpu_expert_bytes", plan.cpu_expert_bytes},
      {"experts_in_cpu", plan.placement.experts_in_cpu},
  };
}

std::string format_device_plan(const DevicePlan& plan, bool with_reasons) {
  std::string text = fmt::format("device map {}, KV cache for {} sequence(s) of {} tokens\n", strategy_name(plan.applied),
                                 plan.batch, plan.max_seq_len);
  for (const std::string& note : plan.notes) text += fmt::format("  {}\n", note);
  std::vector<std::vector<std::string>> rows = {
      {"device", "layers", "modules", "weights", "KV cache", "activations", "staging", "total", "budget", "headroom"}};
  for (const DeviceUsage& usage : plan.devices) {
    std::vector<std::string> others;
    for (const std::string& module : usage.other_modules) others.push_back(short_name(module));
    const std::optional<int64_t> headroom = usage.headroom_bytes();
    rows.push_back({usage.device.name(), usage.layers.empty() ? "-" : format_layer_ranges(usage.layers),
                    others.empty() ? "-" : fmt::format("{}", fmt::join(others, ",")),
                    format_memory_size(usage.weight_bytes), format_memory_size(usage.kv_cache_bytes),
                    format_memory_size(usage.activation_bytes), format_memory_size(usage.staging_bytes),
                    format_memory_size(usage.total_bytes()), optional_size(usage.budget_bytes),
                    headroom ? format_memory_size(*headroom) : "-"});
  }
  text += format_table(rows, "lllrrrrrrr");
  for (const DeviceUsage& usage : plan.devices)
    if (usage.budget_source != "--devices" && usage.budget_source != "--max-memory")
      text += fmt::format("{} budget: {}\n", usage.device.name(), usage.budget_source);
  if (plan.placement.offload_gpu)
    text += fmt::format("layers on cpu/disk are streamed to {} (staging room reserved there) or run on the cpu\n",
                        plan.placement.offload_gpu->name());
  if (with_reasons) {
    std::vector<std::vector<std::string>> reasons = {{"module", "device", "weights", "KV cache", "reason"}};
    for (const ModulePlacement& module : plan.modules)
      reasons.push_back({module.name, module.device.name(), format_memory_size(module.weight_bytes),
                         format_memory_size(module.kv_cache_bytes), module.reason});
    text += fmt::format("\n{}", format_table(reasons, "llrrl"));
  }
  return text;
}

}  // namespace shardlm
