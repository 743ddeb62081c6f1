// Shared by `plan` and `generate`: one reading of --device-map, and the devices this machine has.
#include "device_map_options.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/device_map/explicit_map.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/device_query.h"
#endif

namespace shardlm::cli {

PlanOptions device_map_plan_options(const std::string& device_map, int64_t max_seq_len, int batch,
                                    const ModelConfig& config) {
  PlanOptions plan;
  if (const std::optional<DeviceMapStrategy> strategy = parse_device_map_strategy(device_map)) {
    plan.strategy = *strategy;
  } else {
    plan.strategy = DeviceMapStrategy::EXPLICIT;
    plan.explicit_map = device_map.starts_with('{') ? parse_explicit_device_map(device_map, "--device-map")
                                                    : read_explicit_device_map(device_map);
  }
  // The CUDA model's own default: the model's context, capped at 4096.
  if (max_seq_len < 0) fail("--max-seq-len must be >= 1, got {}", max_seq_len);
  plan.max_seq_len = max_seq_len > 0 ? max_seq_len : std::min<int64_t>(config.max_position_embeddings, 4096);
  if (plan.max_seq_len > config.max_position_embeddings)
    fail("--max-seq-len {} exceeds the model's max_position_embeddings {}", plan.max_seq_len,
         config.max_position_embeddings);
  plan.batch = batch;
  return plan;
}

std::vector<DeviceBudget> this_machines_devices() {
  std::vector<DeviceBudget> budgets;
#ifdef SHARDLM_WITH_CUDA
  budgets = cuda::detect_cuda_devices();
#endif
  for (DeviceBudget& budget : detect_devices()) budgets.push_back(std::move(budget));
  return budgets;
}

}  // namespace shardlm::cli
