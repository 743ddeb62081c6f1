// A linear layer as one rank holds it: its weight and bias views into the checkpoint and the
// collective that completes its output under tensor parallelism.
#pragma once

#include <cstdint>

#include "core/weight_view.h"
#include "plan/tp_plan_strategy.h"

namespace shardlm {

// A linear layer as this rank holds it, with the collective its plan strategy implies. Without
// tensor parallelism: the whole weight, and no collective.
struct Linear {
  WeightView weight;  // (out_features, in_features): whole, a colwise rank's rows or a rowwise rank's columns
  WeightView bias;    // (out_features) or absent; a summed output's bias is whole and added once, after the sum
  // What turns this rank's output into the module's full output: nothing, a sum over the ranks
  // (rowwise: each holds a partial sum) or a gather of the ranks' blocks of output features.
  TpCollective collective = TpCollective::NONE;
  int64_t gather_block = 0;  // ALL_GATHER: output features per rank in the gather, padded for uneven splits

  int64_t out_features() const { return weight.rows; }
  int64_t in_features() const { return weight.cols; }
  bool partial() const { return collective == TpCollective::ALL_REDUCE; }
};

}  // namespace shardlm
