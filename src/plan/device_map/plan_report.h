// A DevicePlan for people and for tools: the table `shardlm plan` prints (and the model loader can
// log at load time), and the same content as JSON. The JSON's "device_map" object maps every
// module to its device in the form an explicit --device-map file takes, so a plan can be saved,
// edited and fed back.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "plan/device_map/planner.h"

namespace shardlm {

nlohmann::json device_plan_to_json(const DevicePlan& plan);

// The per-device table; with_reasons adds one line per module saying why it is where it is.
std::string format_device_plan(const DevicePlan& plan, bool with_reasons);

}  // namespace shardlm
