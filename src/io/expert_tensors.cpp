#include "io/expert_tensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "core/error.h"

namespace shardlm {
namespace {

void insert_unique(std::map<std::string, TensorInfo>& into, TensorInfo tensor) {
  const auto [existing, inserted] = into.try_emplace(tensor.name, tensor);
  if (!inserted)
    fail("{}: {} is stored twice, as {} and as {}", tensor.file.string(), tensor.name, existing->second.stored_name(),
         tensor.stored_name());
}

// One expert's matrix inside a fused [E, rows, cols] tensor, rows [first_row, first_row + rows).
TensorInfo expert_view(const TensorInfo& fused, const std::string& name, int64_t expert, int64_t first_row, int64_t rows) {
  const int64_t rows_per_expert = fused.shape[1], cols = fused.shape[2];
  const size_t element = dtype_size(fused.dtype);
  TensorInfo view = fused;
  view.name = name;
  view.stored_as = fmt::format("{}[{}, {}:{}]", fused.name, expert, first_row, first_row + rows);
  view.shape = {rows, cols};
  view.data = fused.data + size_t((expert * rows_per_expert + first_row) * cols) * element;
  view.n_bytes = size_t(rows * cols) * element;
  return view;
}

void split_fused(const TensorInfo& fused, std::map<std::string, TensorInfo>& into) {
  if (fused.shape.size() != 3)
    fail("{}: fused expert tensor {} has shape [{}]; it must be 3-D, [experts, rows, columns]", fused.file.string(),
         fused.name, fmt::join(fused.shape, ", "));
  // Without rows or columns no bytes bound the expert count, which could then be anything.
  if (fused.shape[1] == 0 || fused.shape[2] == 0)
    fail("{}: fused expert tensor {} has shape [{}]; each expert's matrix must have rows and columns",
         fused.file.string(), fused.name, fmt::join(fused.shape, ", "));
  const std::string experts = fused.name.substr(0, fused.name.rfind('.'));  // "model.layers.N.mlp.experts"
  const bool gate_up = fused.name.ends_with(".gate_up_proj");
  const int64_t rows = fused.shape[1];
  if (gate_up && rows % 2 != 0)
    fail("{}: fused expert tensor {} has {} rows per expert; gate_up_proj holds gate rows then as many up rows",
         fused.file.string(), fused.name, rows);
  for (int64_t expert = 0; expert < fused.shape[0]; ++expert) {
    const std::string prefix = fmt::format("{}.{}.", experts, expert);
    if (gate_up) {
      insert_unique(into, expert_view(fused, prefix + "gate_proj.weight", expert, 0, rows / 2));
      insert_unique(into, expert_view(fused, prefix + "up_proj.weight", expert, rows / 2, rows / 2));
    } else {
      insert_unique(into, expert_view(fused, prefix + "down_proj.weight", expert, 0, rows));
    }
  }
}

bool is_fused_experts(const std::string& name) {
  return name.ends_with(".experts.gate_up_proj") || name.ends_with(".experts.down_proj");
}

}  // namespace

std::string canonical_expert_path(std::string_view path) {
  std::vector<std::string> segments;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    segments.emplace_back(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  bool mixtral = false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i] == "block_sparse_moe") {
      segments[i] = "mlp";
      mixtral = true;
    } else if (mixtral && i >= 2 && segments[i - 2] == "experts") {
      // Mixtral's expert projections: w1 gates, w3 goes up, w2 comes down.
      if (segments[i] == "w1") segments[i] = "gate_proj";
      if (segments[i] == "w3") segments[i] = "up_proj";
      if (segments[i] == "w2") segments[i] = "down_proj";
    }
  }
  return fmt::format("{}", fmt::join(segments, "."));
}

void name_experts_alike(std::map<std::string, TensorInfo>& tensors) {
  std::map<std::string, TensorInfo> named;
  for (auto& [name, tensor] : tensors) {
    if (is_fused_experts(name)) {
      split_fused(tensor, named);
      continue;
    }
    const std::string canonical = canonical_expert_path(name);
    if (canonical != name) {
      tensor.stored_as = name;
      tensor.name = canonical;
    }
    insert_unique(named, std::move(tensor));
  }
  tensors = std::move(named);
}

}  // namespace shardlm
