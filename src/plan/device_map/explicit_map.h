// A device map written by hand, as Transformers' device_map dict: module-name prefixes mapped to
// devices, e.g. {"model.embed_tokens": 0, "model.layers.0-15": "cuda:0", "model.layers.16-31":
// "cuda:1", "model.norm": 1, "lm_head": "cpu"}. "" names the whole model; "model.layers.A-B" (a
// shardlm extension) names layers A to B. Resolving it against a model checks what Accelerate's
// check_device_map checks and more: every weight covered exactly once, no unit split across
// devices, a tied head with its embedding, and no key that matches nothing (a typo would otherwise
// silently place nothing).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "plan/device_map/device_budget.h"
#include "plan/device_map/model_layout.h"

namespace shardlm {

struct ExplicitMapEntry {
  std::string key;  // as written, for messages and reasons
  std::string prefix;  // one module-name prefix ("model.layers.2-5" becomes four entries)
  DeviceId device;
};

struct ExplicitDeviceMap {
  std::string source;  // the file, or "--device-map" for inline JSON
  std::vector<ExplicitMapEntry> entries;
};

// Values: a GPU ordinal (0), or "0", "cuda:1", "cpu", "disk".
ExplicitDeviceMap parse_explicit_device_map(std::string_view json_text, const std::string& source);
ExplicitDeviceMap read_explicit_device_map(const std::filesystem::path& file);

struct ExplicitPlacement {
  DeviceId device;
  std::string key;  // the key that placed the module (the embedding's, for a tied head no key names)
};

// One placement per layout module, in layout order; throws Error naming the tensor or key at fault.
std::vector<ExplicitPlacement> resolve_explicit_device_map(const ExplicitDeviceMap& map, const ModelLayout& layout);

}  // namespace shardlm
