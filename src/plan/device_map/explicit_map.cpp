// Coverage is checked per tensor, not per module, because a key may name part of a layer
// ("model.layers.3.mlp"); only after every tensor has exactly one key are the tensors of a unit
// required to agree on a device.
#include "plan/device_map/explicit_map.h"

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "io/json_fields.h"

namespace shardlm {
namespace {

// A key covers a name when it is the name, a dotted prefix of it, or "" (everything).
bool covers(const std::string& prefix, const std::string& name) {
  return prefix.empty() || name == prefix || (name.starts_with(prefix) && name[prefix.size()] == '.');
}

// "model.layers.A-B" -> the layer prefixes A..B; any other key is its own prefix.
std::vector<std::string> expand_key(const std::string& key, const std::string& source) {
  constexpr std::string_view kLayers = "model.layers.";
  const size_t dash = key.find('-');
  if (!key.starts_with(kLayers) || dash == std::string::npos) return {key};
  int first = 0, last = 0;
  const char* begin = key.data() + kLayers.size();
  const char* middle = key.data() + dash;
  const char* end = key.data() + key.size();
  const auto parsed_first = std::from_chars(begin, middle, first);
  const auto parsed_last = std::from_chars(middle + 1, end, last);
  if (parsed_first.ec != std::errc() || parsed_first.ptr != middle || parsed_last.ec != std::errc() ||
      parsed_last.ptr != end || first > last || middle == begin)
    fail("{}: key \"{}\" is not a layer range; write model.layers.A-B with A <= B", source, key);
  std::vector<std::string> prefixes;
  for (int il = first; il <= last; ++il) prefixes.push_back(fmt::format("{}{}", kLayers, il));
  return prefixes;
}

DeviceId device_value(const nlohmann::json& value, const std::string& key, const std::string& source) {
  const std::string option = fmt::format("{}: \"{}\"", source, key);
  if (value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() <= INT32_MAX)
    return DeviceId::cuda(int(value.get<int64_t>()));
  if (value.is_string()) return parse_device_id(value.get_ref<const std::string&>(), option);
  fail("{} must be a GPU ordinal or \"cuda:N\", \"cpu\" or \"disk\", got {}", option, describe_json(value));
}

}  // namespace

ExplicitDeviceMap parse_explicit_device_map(std::string_view json_text, const std::string& source) {
  const nlohmann::json object = parse_json_object(json_text, source, "the device map");
  ExplicitDeviceMap map{source, {}};
  for (const auto& [key, value] : object.items()) {
    const DeviceId device = device_value(value, key, source);
    for (std::string& prefix : expand_key(key, source)) map.entries.push_back({key, std::move(prefix), device});
  }
  if (map.entries.empty()) fail("{}: the device map is empty", source);
  return map;
}

ExplicitDeviceMap read_explicit_device_map(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail("--device-map: cannot read {}", file.string());
  std::stringstream text;
  text << in.rdbuf();
  return parse_explicit_device_map(text.str(), file.string());
}

std::vector<ExplicitPlacement> resolve_explicit_device_map(const ExplicitDeviceMap& map, const ModelLayout& layout) {
  std::vector<bool> entry_used(map.entries.size(), false);
  std::vector<std::optional<ExplicitPlacement>> placements(layout.modules.size());
  std::vector<std::string> first_tensor(layout.modules.size());  // the tensor that set the module's device

  for (size_t index = 0; index < layout.modules.size(); ++index) {
    const ModuleWeights& module = layout.modules[index];
    for (const std::string& tensor : module.tensors) {
      const ExplicitMapEntry* match = nullptr;
      for (size_t e = 0; e < map.entries.size(); ++e) {
        if (!covers(map.entries[e].prefix, tensor)) continue;
        if (match)
          fail("{}: tensor {} is covered twice, by \"{}\" and by \"{}\"; each weight needs exactly one key", map.source,
               tensor, match->key, map.entries[e].key);
        match = &map.entries[e];
        entry_used[e] = true;
      }
      if (!match) fail("{}: tensor {} is not covered by any key of the device map", map.source, tensor);
      if (!placements[index]) {
        placements[index] = ExplicitPlacement{match->device, match->key};
        first_tensor[index] = tensor;
      } else if (placements[index]->device != match->device) {
        fail("{}: {} would be split: {} on {} (\"{}\") but {} on {} (\"{}\"); {} must stay on one device", map.source,
             module.name, first_tensor[index], placements[index]->device.name(), placements[index]->key, tensor,
             match->device.name(), match->key,
             module.kind == ModuleKind::LAYER ? "a decoder layer" : "a module");
      }
    }
  }

  // The tied head has no tensor: it goes where the embedding goes, and a key naming it must agree.
  if (layout.tied_head) {
    size_t embed = 0, head = 0;
    for (size_t index = 0; index < layout.modules.size(); ++index) {
      if (layout.modules[index].kind == ModuleKind::EMBED) embed = index;
      if (layout.modules[index].kind == ModuleKind::HEAD) head = index;
    }
    placements[head] = ExplicitPlacement{placements[embed]->device, placements[embed]->key};
    for (size_t e = 0; e < map.entries.size(); ++e) {
      const ExplicitMapEntry& entry = map.entries[e];
      if (!covers(entry.prefix, "lm_head")) continue;
      entry_used[e] = true;
      if (entry.device != placements[embed]->device)
        fail("{}: lm_head is tied to model.embed_tokens (tie_word_embeddings) and must share its device, but \"{}\" "
             "puts it on {} and model.embed_tokens is on {}",
             map.source, entry.key, entry.device.name(), placements[embed]->device.name());
    }
  }

  for (size_t e = 0; e < map.entries.size(); ++e)
    if (!entry_used[e])
      fail("{}: key \"{}\" matches no weight of the model{}", map.source, map.entries[e].key,
           map.entries[e].key != map.entries[e].prefix ? fmt::format(" ({} does not exist)", map.entries[e].prefix) : "");

  std::vector<ExplicitPlacement> result;
  for (const std::optional<ExplicitPlacement>& placement : placements) result.push_back(*placement);
  return result;
}

}  // namespace shardlm
