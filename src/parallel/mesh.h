// The device mesh and tensor placements, after torch.distributed's DeviceMesh and DTensor. A mesh
// lays out ranks in a row-major grid of named dimensions: today it is 1-D ("tp"), and a later
// pipeline stage becomes a leading "pp" dimension without changing how a rank finds its tensor-
// parallel group. A Placement says how one tensor is spread over one mesh dimension: each rank
// holds a slice along a tensor dimension (Shard), the whole tensor (Replicate), or a full-size
// addend that the ranks must sum (Partial, the output of a rowwise matmul before its all-reduce).
#pragma once

#include <string>
#include <vector>

namespace shardlm {

struct MeshDim {
  std::string name;  // "tp", later "pp"
  int size = 1;
};

class DeviceMesh {
 public:
  // Dimensions in row-major order: the last one varies fastest, so the ranks of one tensor-parallel
  // group are consecutive (and, under torchrun, on one node) when "tp" is last.
  explicit DeviceMesh(std::vector<MeshDim> dims);
  static DeviceMesh tensor_parallel(int tp_size);  // the 1-D mesh {"tp": tp_size}

  int size() const { return size_; }  // number of ranks
  int n_dims() const { return int(dims_.size()); }
  const std::vector<MeshDim>& dims() const { return dims_; }
  int dim_index(const std::string& name) const;  // throws Error for an unknown name
  int dim_size(const std::string& name) const { return dims_[size_t(dim_index(name))].size; }

  int rank_of(const std::vector<int>& coords) const;
  std::vector<int> coords_of(int rank) const;
  // The ranks that differ from `rank` only along `dim`, in coordinate order; `rank` is among them
  // at position coords_of(rank)[dim_index(dim)], its rank within the group.
  std::vector<int> group_of(int rank, const std::string& dim) const;
  int rank_in_group(int rank, const std::string& dim) const { return coords_of(rank)[size_t(dim_index(dim))]; }

 private:
  std::vector<MeshDim> dims_;
  int size_ = 1;
};

// How a tensor is laid out over one mesh dimension. Partial is always a sum: the only reduction
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
