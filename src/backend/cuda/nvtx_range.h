// A named NVTX range for the scope's lifetime, so that a profiler can pick a kind of step's kernels
// apart from the rest (`ncu --nvtx --nvtx-include "decode step/"`, bench/gpu_profile.sh; Nsight
// Systems' NVTX reports). Without a profiler attached a range costs a call that returns at once.
#pragma once

#include <nvtx3/nvToolsExt.h>

namespace shardlm::cuda {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace shardlm::cuda
