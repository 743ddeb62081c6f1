// Tensor placements over the tensor-parallel group, after torch.distributed's DTensor. A Placement
// says how one tensor is spread over the group's ranks: each rank holds a slice along a tensor
// dimension (Shard), the whole tensor (Replicate), or a full-size addend that the ranks must sum
// (Partial, the output of a rowwise matmul before its all-reduce).
#pragma once

#include <string>

namespace shardlm {

// How a tensor is laid out over the group. Partial is always a sum: the only reduction
// tensor parallelism needs.
struct Placement {
  enum class Kind { SHARD, REPLICATE, PARTIAL };
  Kind kind = Kind::REPLICATE;
  int dim = 0;  // the sharded tensor dimension, SHARD only; -1 is the last dimension, as in torch

  static Placement shard(int dim) { return {Kind::SHARD, dim}; }
  static Placement replicate() { return {Kind::REPLICATE, 0}; }
  static Placement partial() { return {Kind::PARTIAL, 0}; }

  bool is_shard() const { return kind == Kind::SHARD; }
  bool operator==(const Placement&) const = default;
};

std::string placement_name(const Placement& placement);  // "Shard(0)", "Replicate()", "Partial(sum)"

}  // namespace shardlm
