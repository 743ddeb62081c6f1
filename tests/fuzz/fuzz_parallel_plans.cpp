// libFuzzer target for the parallelism options users write: each input is parsed as a memory
// string (--max-memory, --devices), as an explicit device map (--device-map FILE.json) and as a
// manual tensor-parallel plan (--tp-plan FILE.json). Only shardlm::Error may come out.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "plan/device_map/device_budget.h"
#include "plan/device_map/explicit_map.h"
#include "plan/memory_size.h"
#include "plan/tp_plan_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    shardlm::parse_memory_size(text, "--max-memory");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::parse_memory_entries(text, "--max-memory");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::parse_explicit_device_map(text, "map.json");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::TpPlanSource::from_json(text, "plan.json");
  } catch (const shardlm::Error&) {
  }
  return 0;
}
