// The device-map planner: which device holds each unit of the model (embedding, each decoder
// layer, final norm, head), and why. It is pure arithmetic on a ModelLayout and device budgets,
// without CUDA, so a plan can be made and tested on any machine; the result is data that the model
// loader consumes (LayerPlacement) and that `shardlm plan` prints. The strategies follow Accelerate's
// device_map="auto" | "balanced" | "balanced_low_0" | "sequential" and explicit maps;
// docs/DEVICE_MAP.md states the rules and where they differ from Accelerate's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plan/device_map/device_budget.h"
#include "plan/device_map/explicit_map.h"
#include "plan/device_map/model_layout.h"

namespace shardlm {

enum class DeviceMapStrategy { AUTO, BALANCED, BALANCED_LOW_0, SEQUENTIAL, EXPLICIT };

std::string_view strategy_name(DeviceMapStrategy strategy);  // "auto", ..., "explicit"

// Fixed per-GPU cost besides the activation buffers: the cuBLASLt workspace (64 MiB), CUDA graphs
// and attention scratch, with room for the allocator's rounding.
constexpr int64_t kGpuRuntimeOverheadBytes = int64_t(256) << 20;
// An offloaded layer streamed to a GPU needs two staging buffers there (one being copied while the
// other computes), each as big as the largest offloaded unit.
constexpr int kOffloadStagingBuffers = 2;

struct PlanOptions {
  DeviceMapStrategy strategy = DeviceMapStrategy::AUTO;
  ExplicitDeviceMap explicit_map;  // with EXPLICIT only
  int64_t max_seq_len = 4096;      // tokens per sequence the KV cache holds
  int batch = 1;                   // sequences generated together
  int max_rows = 512;              // rows per forward pass (longer prefills are chunked; at least batch), sizes activations
  int64_t gpu_runtime_overhead_bytes = kGpuRuntimeOverheadBytes;
  // Mixture-of-experts models: the experts of layers [0, cpu_moe_layers) stay in cpu memory and the
  // cpu computes the ones each token chooses, while attention, router and shared expert are placed
  // with their layer (llama.cpp's --n-cpu-moe N; --cpu-moe is every layer).
  int cpu_moe_layers = 0;
};

struct ModulePlacement {
  std::string name;  // as ModuleWeights::name
  ModuleKind kind = ModuleKind::LAYER;
  int layer = -1;
  DeviceId device;
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes = 0;  // a layer's K and V for batch x max_seq_len tokens; 0 for the rest
  std::string reason;          // "fits in cuda:0 budget (3.20 GiB left)", "explicit map: \"model.layers\"", ...
};

struct DeviceUsage {
  DeviceId device;
  std::optional<int64_t> budget_bytes;  // nullopt: unlimited
  std::string budget_source;
  std::vector<int> layers;              // decoder layers placed here, ascending
  std::vector<std::string> other_modules;  // "model.embed_tokens", "model.norm", "lm_head" placed here
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes = 0;           // of the layers that compute here (disk layers' caches live in cpu)
  int64_t activation_bytes = 0;         // activation buffers, runtime overhead, and the head's logits
  int64_t staging_bytes = 0;            // buffers for streaming offloaded layers in (offload GPU only)

  int64_t total_bytes() const { return weight_bytes + kv_cache_bytes + activation_bytes + staging_bytes; }
  std::optional<int64_t> headroom_bytes() const;
};

// Where each unit runs from: what the model code reads (STYLE.md rule 7).
struct LayerPlacement {
  DeviceId embed;
  std::vector<DeviceId> layers;  // [il]
  DeviceId norm;
  DeviceId head;                 // == embed when the head is tied
  // The GPU that runs the layers placed on cpu or disk when they are streamed; nullopt when
  // nothing is offloaded or there is no GPU.
  std::optional<DeviceId> offload_gpu;
  std::vector<bool> experts_in_cpu;  // [il]: the layer's experts stay in cpu memory (PlanOptions::cpu_moe_layers)
};

struct DevicePlan {
  DeviceMapStrategy strategy = DeviceMapStrategy::AUTO;  // as asked
  DeviceMapStrategy applied = DeviceMapStrategy::AUTO;   // what ran: auto resolves to balanced or sequential
  int64_t max_seq_len = 0;
  int batch = 0;
  std::vector<std::string> notes;        // how the strategy resolved, e.g. "auto: 2 GPUs, so balanced"
  std::vector<ModulePlacement> modules;  // layout order
  std::vector<DeviceUsage> devices;      // every budgeted device, in device order, used or not
  LayerPlacement placement;
  int64_t cpu_expert_bytes = 0;          // experts kept in cpu memory (counted in the cpu's weight bytes)
};

// Plans the layout onto the budgets. Throws Error when the model cannot fit, saying how much is
// missing, and for explicit maps that are malformed, name unknown devices or overfill a budget.
DevicePlan plan_device_map(const ModelLayout& layout, const std::vector<DeviceBudget>& budgets,
                           const PlanOptions& options);

// "auto", "balanced", "balanced_low_0", "sequential"; anything else: nullopt (a map file, maybe).
std::optional<DeviceMapStrategy> parse_device_map_strategy(std::string_view text);

// "0-15", "0-3,8,10-12", "" for none.
std::string format_layer_ranges(const std::vector<int>& layers);

}  // namespace shardlm
