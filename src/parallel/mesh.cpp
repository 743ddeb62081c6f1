// Row-major rank arithmetic for DeviceMesh; the checks name the mesh so a bad launch says which
// dimension disagrees with the world size.
#include "parallel/mesh.h"

#include <fmt/format.h>

#include "core/error.h"

namespace shardlm {

DeviceMesh::DeviceMesh(std::vector<MeshDim> dims) : dims_(std::move(dims)) {
  if (dims_.empty()) fail("device mesh: needs at least one dimension");
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (dims_[i].size < 1) fail("device mesh: dimension \"{}\" has size {}, must be at least 1", dims_[i].name, dims_[i].size);
    for (size_t j = 0; j < i; ++j) {
      if (dims_[j].name == dims_[i].name) fail("device mesh: dimension \"{}\" appears twice", dims_[i].name);
    }
    size_ *= dims_[i].size;
  }
}

DeviceMesh DeviceMesh::tensor_parallel(int tp_size) { return DeviceMesh({{"tp", tp_size}}); }

int DeviceMesh::dim_index(const std::string& name) const {
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (dims_[i].name == name) return int(i);
  }
  fail("device mesh: no dimension named \"{}\"", name);
}

int DeviceMesh::rank_of(const std::vector<int>& coords) const {
  if (coords.size() != dims_.size()) fail("device mesh: {} coordinates for a {}-D mesh", coords.size(), dims_.size());
  int rank = 0;
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (coords[i] < 0 || coords[i] >= dims_[i].size) {
      fail("device mesh: coordinate {} is outside dimension \"{}\" of size {}", coords[i], dims_[i].name, dims_[i].size);
    }
    rank = rank * dims_[i].size + coords[i];
  }
  return rank;
}

std::vector<int> DeviceMesh::coords_of(int rank) const {
  if (rank < 0 || rank >= size_) fail("device mesh: rank {} is outside a mesh of {} ranks", rank, size_);
  std::vector<int> coords(dims_.size());
  for (size_t i = dims_.size(); i-- > 0;) {
    coords[i] = rank % dims_[i].size;
    rank /= dims_[i].size;
  }
  return coords;
}

std::vector<int> DeviceMesh::group_of(int rank, const std::string& dim) const {
  const size_t index = size_t(dim_index(dim));
  std::vector<int> coords = coords_of(rank);
  std::vector<int> group;
  for (int position = 0; position < dims_[index].size; ++position) {
    coords[index] = position;
    group.push_back(rank_of(coords));
  }
  return group;
}

std::string placement_name(const Placement& placement) {
  switch (placement.kind) {
    case Placement::Kind::SHARD: return fmt::format("Shard({})", placement.dim);
    case Placement::Kind::REPLICATE: return "Replicate()";
    case Placement::Kind::PARTIAL: return "Partial(sum)";
  }
  return "?";
}

}  // namespace shardlm
