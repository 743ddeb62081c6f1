// Parsing of device names and memory maps, and the CPU's free memory. Every error names the
// option it came from and the token at fault, because these strings are typed by hand.
#include "plan/device_map/device_budget.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "io/json_fields.h"
#include "plan/memory_size.h"

namespace shardlm {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

bool parse_ordinal(std::string_view text, int& index) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), index);
  return error == std::errc() && end == text.data() + text.size();
}

std::string device_names(const std::vector<DeviceBudget>& budgets) {
  std::vector<std::string> names;
  for (const DeviceBudget& budget : budgets) names.push_back(budget.device.name());
  return fmt::format("{}", fmt::join(names, ", "));
}

// Adds an entry, refusing a device that is already there under any spelling ("0" and "cuda:0").
void add_entry(std::vector<MemoryEntry>& entries, MemoryEntry entry, std::string_view key, std::string_view option) {
  for (const MemoryEntry& existing : entries)
    if (existing.device == entry.device)
      fail("{}: {} is given twice (second time as \"{}\")", option, entry.device.name(), key);
  entries.push_back(entry);
}

std::vector<MemoryEntry> parse_json_entries(std::string_view text, std::string_view option) {
  const std::string source(option);
  const nlohmann::json object = parse_json_object(text, source, "the memory map");
  std::vector<MemoryEntry> entries;
  for (const auto& [key, value] : object.items()) {
    MemoryEntry entry{parse_device_id(key, option), std::nullopt};
    if (value.is_string()) {
      entry.bytes = parse_memory_size(value.get_ref<const std::string&>(), option);
    } else if (value.is_number_integer() && !value.is_number_unsigned() && value.get<int64_t>() < 0) {
      fail("{}: \"{}\" has a negative size {}", option, key, value.get<int64_t>());
    } else if (value.is_number_integer() && value.get<uint64_t>() <= uint64_t(INT64_MAX)) {
      entry.bytes = int64_t(value.get<uint64_t>());
    } else {
      fail("{}: \"{}\" must be a byte count or a size like \"20GiB\", got {}", option, key, describe_json(value));
    }
    add_entry(entries, entry, key, option);
  }
  return entries;
}

}  // namespace

std::string DeviceId::name() const {
  switch (kind) {
    case DeviceKind::CUDA: return fmt::format("cuda:{}", index);
    case DeviceKind::CPU: return "cpu";
    case DeviceKind::DISK: return "disk";
  }
  return "?";
}

DeviceId parse_device_id(std::string_view text, std::string_view option) {
  const std::string_view name = trim(text);
  int index = 0;
  if (name == "cpu") return DeviceId::cpu();
  if (name == "disk") return DeviceId::disk();
  if (name == "cuda") return DeviceId::cuda(0);
  if (parse_ordinal(name, index)) return DeviceId::cuda(index);
  if (name.starts_with("cuda:") && parse_ordinal(name.substr(5), index)) return DeviceId::cuda(index);
  fail("{}: unknown device \"{}\"; use N or cuda:N for a GPU, cpu or disk", option, text);
}

std::vector<MemoryEntry> parse_memory_entries(std::string_view text, std::string_view option) {
  std::vector<MemoryEntry> entries;
  if (trim(text).starts_with('{')) {
    entries = parse_json_entries(text, option);
  } else {
    std::string_view rest = text;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (item.empty()) fail("{}: empty entry in \"{}\"; write DEVICE=SIZE,DEVICE=SIZE", option, text);
      const size_t equals = item.find('=');
      const std::string_view key = trim(item.substr(0, equals));
      MemoryEntry entry{parse_device_id(key, option), std::nullopt};
      if (equals != std::string_view::npos) entry.bytes = parse_memory_size(item.substr(equals + 1), option);
      add_entry(entries, entry, key, option);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (entries.empty()) fail("{}: names no device", option);
  std::sort(entries.begin(), entries.end(), [](const MemoryEntry& a, const MemoryEntry& b) { return a.device < b.device; });
  return entries;
}

std::vector<DeviceBudget> budgets_from_declaration(std::string_view text) {
  std::vector<DeviceBudget> budgets;
  for (const MemoryEntry& entry : parse_memory_entries(text, "--devices")) {
    if (!entry.bytes && entry.device.kind != DeviceKind::DISK)
      fail("--devices: {} needs a size, e.g. {}=80GiB (only disk may go without one)", entry.device.name(),
           entry.device.name());
    budgets.push_back({entry.device, entry.bytes, "--devices"});
  }
  return budgets;
}

std::vector<DeviceBudget> apply_max_memory(const std::vector<DeviceBudget>& available, std::string_view max_memory) {
  std::vector<DeviceBudget> budgets;
  for (const MemoryEntry& entry : parse_memory_entries(max_memory, "--max-memory")) {
    auto found = std::find_if(available.begin(), available.end(),
                              [&](const DeviceBudget& budget) { return budget.device == entry.device; });
    // Disk is never detected, but any machine has one: naming it in --max-memory allows offloading there.
    DeviceBudget budget = found != available.end() ? *found : DeviceBudget{DeviceId::disk(), std::nullopt, "--max-memory"};
    if (found == available.end() && entry.device.kind != DeviceKind::DISK)
      fail("--max-memory: {} is not among the devices ({})", entry.device.name(), device_names(available));
    if (entry.bytes && budget.bytes && *entry.bytes > *budget.bytes) {
      budget.source = fmt::format("--max-memory {} clamped to {} ({})", format_memory_size(*entry.bytes),
                                  format_memory_size(*budget.bytes), budget.source);
    } else if (entry.bytes) {
      budget.bytes = entry.bytes;
      budget.source = "--max-memory";
    }
    budgets.push_back(budget);
  }
  return budgets;
}

DeviceBudget cpu_budget_from_meminfo(std::string_view meminfo_text) {
  std::istringstream lines{std::string(meminfo_text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("MemAvailable:")) continue;
    std::istringstream fields(line.substr(13));
    int64_t kibibytes = -1;
    std::string unit;
    if (fields >> kibibytes >> unit && kibibytes >= 0 && unit == "kB")
      return {DeviceId::cpu(), kibibytes * 1024, "MemAvailable"};
    break;
  }
  fail("/proc/meminfo has no readable MemAvailable line; declare the CPU's memory with --devices cpu=SIZE");
}

std::vector<DeviceBudget> detect_devices() {
  std::ifstream file("/proc/meminfo");
  if (!file) fail("cannot read /proc/meminfo; declare the devices with --devices (e.g. cpu=64GiB)");
  std::stringstream text;
  text << file.rdbuf();
  return {cpu_budget_from_meminfo(text.str())};
}

}  // namespace shardlm
