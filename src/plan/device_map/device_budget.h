// The devices a model can be placed on and how many bytes each may hold. Budgets come from three
// places: the machine (detect_devices), a declaration of hypothetical devices (--devices, so a plan
// can be made where there are no GPUs) and the user's caps (--max-memory, Accelerate's max_memory).
// Devices are always ordered as Accelerate orders them: GPUs by index, then the CPU, then disk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

enum class DeviceKind { CUDA, CPU, DISK };

struct DeviceId {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;  // CUDA ordinal; 0 for cpu and disk

  static DeviceId cuda(int index) { return {DeviceKind::CUDA, index}; }
  static DeviceId cpu() { return {DeviceKind::CPU, 0}; }
  static DeviceId disk() { return {DeviceKind::DISK, 0}; }

  bool is_gpu() const { return kind == DeviceKind::CUDA; }
  // Disk holds weights but computes nothing: its layers run on a GPU or the CPU.
  bool computes() const { return kind != DeviceKind::DISK; }
  std::string name() const;  // "cuda:1", "cpu", "disk"

  friend auto operator<=>(const DeviceId&, const DeviceId&) = default;  // GPUs by index, cpu, disk
};

// "0", "cuda:0", "cuda" (= cuda:0), "cpu" or "disk"; anything else is an error naming `option`.
DeviceId parse_device_id(std::string_view text, std::string_view option);

struct DeviceBudget {
  DeviceId device;
  std::optional<int64_t> bytes;  // nullopt: no limit (only disk may be unlimited)
  std::string source;            // where the number came from, for the report: "--devices", "free memory", ...
};

// One entry of --max-memory or --devices: a device and its size, if one was written.
struct MemoryEntry {
  DeviceId device;
  std::optional<int64_t> bytes;
};

// "0=20GiB,1=40GiB,cpu=64GiB,disk" or the JSON object {"0": "20GiB", "cpu": 68719476736}.
// Sizes follow parse_memory_size (a JSON integer is bytes). A device without "=size" is allowed
// by the text form only. Entries come back in device order; a device named twice is an error.
std::vector<MemoryEntry> parse_memory_entries(std::string_view text, std::string_view option);

// --devices: hypothetical devices with the memory free on each. GPUs and the CPU need a size;
// a bare "disk" is unlimited.
std::vector<DeviceBudget> budgets_from_declaration(std::string_view text);

// --max-memory applied to the devices there are. As in Accelerate, only the devices it names are
// used; a size caps the device's free memory (a bigger size is clamped to it, and the source says
// so), a bare name keeps the device's own size. Naming a device that is not there is an error.
std::vector<DeviceBudget> apply_max_memory(const std::vector<DeviceBudget>& available, std::string_view max_memory);

// The devices of this machine and their free memory. In this CPU-only build: the CPU, with the
// kernel's MemAvailable. The CUDA build puts each GPU's free memory (cudaMemGetInfo) in front.
std::vector<DeviceBudget> detect_devices();

// The CPU's budget from /proc/meminfo text: MemAvailable (kB) in bytes.
DeviceBudget cpu_budget_from_meminfo(std::string_view meminfo_text);

}  // namespace shardlm
