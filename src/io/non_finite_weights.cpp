// A value is non-finite when its exponent bits are all ones, in F32, F16 and BF16 alike, so the
// scan tests bits and converts nothing. Elements are read with memcpy because tensor data is only
// as aligned as the checkpoint's writer made it.
#include "io/non_finite_weights.h"

#include <algorithm>
#include <cstring>

namespace shardlm {
namespace {

template <typename Bits>
NonFiniteTensor scan(const TensorInfo& tensor, Bits exponent_mask) {
  const int64_t n = tensor.numel();
  int64_t count = 0, first = n;
#pragma omp parallel for reduction(+ : count) reduction(min : first) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, tensor.data + size_t(i) * sizeof(Bits), sizeof(Bits));
    if ((bits & exponent_mask) == exponent_mask) {
      ++count;
      first = std::min(first, i);
    }
  }
  return {tensor.name, count, first};
}

NonFiniteTensor scan(const TensorInfo& tensor) {
  switch (tensor.dtype) {
    case DType::F32: return scan<uint32_t>(tensor, 0x7f800000u);
    case DType::F16: return scan<uint16_t>(tensor, 0x7c00u);
    case DType::BF16: return scan<uint16_t>(tensor, 0x7f80u);
  }
  return {tensor.name, 0, 0};
}

}  // namespace

std::vector<NonFiniteTensor> find_non_finite_tensors(const Checkpoint& checkpoint) {
  std::vector<NonFiniteTensor> found;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    NonFiniteTensor result = scan(tensor);
    if (result.n_non_finite > 0) found.push_back(std::move(result));
  }
  return found;
}

}  // namespace shardlm
