// Per-kind rows and per-rank byte totals for a resolved plan. Bytes are counted per stored tensor,
// so a tied lm_head that reads the embedding's rows adds nothing when the embedding already holds
// them.
#include "plan/tp_plan_summary.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace shardlm {
namespace {

// "model.layers.12.mlp.up_proj.weight" -> "model.layers.*.mlp.up_proj.weight"
std::string kind_of(const std::string& name) {
  std::string kind;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    const std::string_view segment(name.data() + start, dot - start);
    const bool number = !segment.empty() && std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!kind.empty()) kind += '.';
    kind += number ? std::string_view("*") : segment;
    start = dot + 1;
  }
  return kind;
}

int64_t slice_bytes(const TpWeight& weight, const TensorSlice& slice) {
  return slice.numel() * int64_t(dtype_size(weight.dtype));
}

int64_t full_bytes(const TpWeight& weight) {
  int64_t n = int64_t(dtype_size(weight.dtype));
  for (int64_t extent : weight.shape) n *= extent;
  return n;
}

bool whole_on_every_rank(const TpWeight& weight) {
  return std::all_of(weight.slices.begin(), weight.slices.end(), [](const TensorSlice& slice) { return slice.whole(); });
}

bool same_elements(const TensorSlice& a, const TensorSlice& b) {
  if (a.held != b.held || a.dim != b.dim || a.segments.size() != b.segments.size()) return false;
  for (size_t i = 0; i < a.segments.size(); ++i) {
    if (a.segments[i].offset != b.segments[i].offset || a.segments[i].length != b.segments[i].length) return false;
  }
  return true;
}

std::string format_bytes(int64_t bytes) {
  if (bytes >= (int64_t(1) << 30)) return fmt::format("{:.2f} GiB", double(bytes) / double(int64_t(1) << 30));
  if (bytes >= (int64_t(1) << 20)) return fmt::format("{:.2f} MiB", double(bytes) / double(int64_t(1) << 20));
  if (bytes >= 1024) return fmt::format("{:.1f} KiB", double(bytes) / 1024.0);
  return fmt::format("{} B", bytes);
}

}  // namespace

TpSummary summarize_tp_plan(const TpPlan& plan) {
  const int tp = plan.tp_size();
  TpSummary summary;
  summary.tp_size = tp;
  summary.origin = plan.origin();
  summary.bytes_per_rank.assign(size_t(tp), 0);

  std::map<std::string, size_t> row_of_kind;
  std::map<std::string, std::vector<const TpWeight*>> uses_of_source;
  std::map<std::string, TpCollective> collective_of_module;
  for (const TpWeight& weight : plan.weights()) {
    const std::string kind = kind_of(weight.name);
    auto [found, inserted] = row_of_kind.emplace(kind, summary.rows.size());
    if (inserted) {
      TpSummaryRow row;
      row.kind = kind;
      row.strategy = weight.strategy_name;
      row.in_plan = weight.in_plan();
      row.placement = weight.placement;
      row.shape = weight.shape;
      row.rank0_shape = weight.slices[0].local_shape;
      row.bytes_per_rank.assign(size_t(tp), 0);
      if (weight.source_name != weight.name) row.source_name = weight.source_name;
      summary.rows.push_back(std::move(row));
    }
    TpSummaryRow& row = summary.rows[found->second];
    ++row.n_weights;
    for (int rank = 0; rank < tp; ++rank) {
      const TensorSlice& slice = weight.slices[size_t(rank)];
      row.bytes_per_rank[size_t(rank)] += slice_bytes(weight, slice);
      if (!slice.held) row.by_expert = true;
      else if (slice.local_shape != row.rank0_shape) row.uneven = true;
      row.n_copies = std::max(row.n_copies, whole_on_every_rank(weight) ? tp : 1);
      for (const SliceSegment& segment : slice.segments) row.n_copies = std::max(row.n_copies, segment.n_copies);
    }
    uses_of_source[weight.source_name].push_back(&weight);
    if (weight.in_plan()) {
      const size_t dot = weight.name.rfind('.');
      collective_of_module[weight.name.substr(0, dot)] = strategy_traits(weight.strategy).collective;
    }
  }
  for (const TpModule& module : plan.modules()) collective_of_module[module.name] = strategy_traits(module.strategy).collective;
  for (const auto& [module, collective] : collective_of_module) {
    if (collective == TpCollective::ALL_REDUCE) ++summary.all_reduces_per_forward;
    if (collective == TpCollective::ALL_GATHER) ++summary.all_gathers_per_forward;
  }

  for (const auto& [source, uses] : uses_of_source) {
    const int64_t full = full_bytes(*uses.front());
    summary.model_bytes += full;
    const bool replicated = std::any_of(uses.begin(), uses.end(), [](const TpWeight* use) { return whole_on_every_rank(*use); });
    if (replicated) summary.replicated_bytes += full;
    for (int rank = 0; rank < tp; ++rank) {
      if (replicated) {
        summary.bytes_per_rank[size_t(rank)] += full;
        continue;
      }
      std::vector<const TensorSlice*> distinct;
      int64_t bytes = 0;
      for (const TpWeight* use : uses) {
        const TensorSlice& slice = use->slices[size_t(rank)];
        if (std::none_of(distinct.begin(), distinct.end(), [&](const TensorSlice* seen) { return same_elements(*seen, slice); })) {
          distinct.push_back(&slice);
          bytes += slice_bytes(*use, slice);
        }
      }
      summary.bytes_per_rank[size_t(rank)] += std::min(bytes, full);
    }
  }
  return summary;
}

std::string format_tp_summary(const TpSummary& summary) {
  std::string text = fmt::format("tensor parallel: tp={}, plan {}\n", summary.tp_size, summary.origin);
  size_t kind_width = 6;
  for (const TpSummaryRow& row : summary.rows) kind_width = std::max(kind_width, row.kind.size());
  text += fmt::format("{:<{}}  {:>3}  {:<32}  {:<12}  {:<14}  {:<14}  {}\n", "weight", kind_width, "n", "strategy",
                      "placement", "shape", "rank 0 shard", "bytes/rank");
  for (const TpSummaryRow& row : summary.rows) {
    std::string strategy = row.in_plan ? row.strategy : "replicate (not in plan)";
    std::string notes;
    if (row.uneven) notes += ", uneven: padded to the largest shard";
    if (row.by_expert) notes += ", whole experts split over the ranks";
    if (row.placement.is_shard() && row.n_copies > 1) notes += fmt::format(", KV heads replicated on {} ranks", row.n_copies);
    if (!row.source_name.empty()) notes += ", reads " + row.source_name;
    text += fmt::format("{:<{}}  {:>3}  {:<32}  {:<12}  {:<14}  {:<14}  {}{}\n", row.kind, kind_width, row.n_weights, strategy,
                        placement_name(row.placement), fmt::format("[{}]", fmt::join(row.shape, ", ")),
                        fmt::format("[{}]", fmt::join(row.rank0_shape, ", ")),
                        format_bytes(*std::max_element(row.bytes_per_rank.begin(), row.bytes_per_rank.end())), notes);
  }
  const int64_t largest = *std::max_element(summary.bytes_per_rank.begin(), summary.bytes_per_rank.end());
  text += fmt::format("per rank: {} of {} ({} replicated on every rank)\n", format_bytes(largest),
                      format_bytes(summary.model_bytes), format_bytes(summary.replicated_bytes));
  text += fmt::format("collectives per forward pass: {} all-reduce, {} all-gather\n", summary.all_reduces_per_forward,
                      summary.all_gathers_per_forward);
  return text;
}

}  // namespace shardlm
