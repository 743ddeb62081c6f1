// One rank's part in a tensor-parallel model: the resolved plan (which slice of each weight it
// reads), its rank, and the communicator its collectives go through.
#pragma once

#include "core/communicator.h"
#include "plan/tp_plan.h"

namespace shardlm {

struct TensorParallelRank {
  const TpPlan* plan = nullptr;
  int rank = 0;
  Communicator* comm = nullptr;
};

}  // namespace shardlm
