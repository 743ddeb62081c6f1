// Finds the tensors of a checkpoint that hold NaN or infinite values. One such value in a weight
// turns every logit downstream into NaN, and the result is text that looks generated but is not;
// `shardlm info --check-weights` names the tensors so the checkpoint can be fixed at its source.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace shardlm {

struct NonFiniteTensor {
  std::string name;
  int64_t n_non_finite = 0;  // elements that are NaN, +Inf or -Inf
  int64_t first_index = 0;   // flat (row-major) index of the first of them
};

// Every tensor holding a non-finite value, in name order. Reads every byte of the checkpoint.
std::vector<NonFiniteTensor> find_non_finite_tensors(const Checkpoint& checkpoint);

}  // namespace shardlm
