// The planner places units (a tied head rides with the embedding) in execution order and never
// goes back to an earlier device, so every device holds one contiguous run of layers and the
// activations cross each device boundary once. Each strategy is that same in-order fill with
// different per-device limits: sequential fills each device to its budget; balanced searches for
// the smallest per-GPU limit that still holds the whole model; balanced_low_0 gives GPU 0 only what
// the other GPUs cannot hold. A Ledger charges what a unit costs where it lands: weights on its
// device, its KV cache (or the head's logits) on the device that computes it, and the activation
// buffers once per computing device. Two reserves depend on the outcome and are settled by
// re-planning until they stop growing: staging buffers on the offload GPU, and cpu memory held
// back for the caches of layers placed on disk.
#include "plan/device_map/planner.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "plan/memory_size.h"

namespace shardlm {
namespace {

constexpr size_t kNoDevice = SIZE_MAX;

// The modules one placement moves together: a module, or the embedding with its tied head.
using Unit = std::vector<size_t>;

std::vector<Unit> units_of(const ModelLayout& layout) {
  std::vector<Unit> units;
  std::optional<size_t> tied_head;
  for (size_t index = 0; index < layout.modules.size(); ++index)
    if (layout.tied_head && layout.modules[index].kind == ModuleKind::HEAD) tied_head = index;
  for (size_t index = 0; index < layout.modules.size(); ++index) {
    const ModuleKind kind = layout.modules[index].kind;
    if (layout.tied_head && kind == ModuleKind::HEAD) continue;
    units.push_back({index});
    if (kind == ModuleKind::EMBED && tied_head) units.back().push_back(*tied_head);
  }
  return units;
}

std::string device_list(const std::vector<DeviceBudget>& budgets) {
  std::vector<std::string> names;
  for (const DeviceBudget& budget : budgets) names.push_back(budget.device.name());
  return fmt::format("{}", fmt::join(names, ", "));
}

std::vector<size_t> gpus_of(const std::vector<DeviceBudget>& budgets) {
  std::vector<size_t> gpus;
  for (size_t d = 0; d < budgets.size(); ++d)
    if (budgets[d].device.is_gpu() && (!budgets[d].bytes || *budgets[d].bytes > 0)) gpus.push_back(d);
  return gpus;
}

// Per-device charges of a (partial) placement, and the limits a strategy holds them to.
class Ledger {
 public:
  Ledger(const std::vector<DeviceBudget>& budgets, const ModelLayout& layout, const PlanOptions& options)
      : budgets_(budgets), layout_(layout), options_(options), usage_(budgets.size()), active_(budgets.size(), false),
        limits_(budgets.size()), held_back_(budgets.size(), 0) {
    for (size_t d = 0; d < budgets.size(); ++d) {
      usage_[d].device = budgets[d].device;
      usage_[d].budget_bytes = budgets[d].bytes;
      usage_[d].budget_source = budgets[d].source;
      limits_[d] = budgets[d].bytes;
    }
    cpu_ = find(DeviceId::cpu());
  }

  size_t find(DeviceId device) const {
    for (size_t d = 0; d < budgets_.size(); ++d)
      if (budgets_[d].device == device) return d;
    return kNoDevice;
  }
  size_t cpu() const { return cpu_; }

  // A strategy's own limit, below the budget (balanced shares).
  void cap(size_t d, int64_t bytes) { limits_[d] = limits_[d] ? std::min(*limits_[d], bytes) : bytes; }
  // The offload GPU computes the layers it streams in, so it needs its activation buffers too.
  void reserve_staging(size_t d, int64_t bytes) {
    usage_[d].staging_bytes += bytes;
    if (!active_[d]) usage_[d].activation_bytes += activation_reserve(d);
    active_[d] = true;
  }
  // Room on d that units placed on d may not use (it is kept for other devices' charges).
  void hold_back(size_t d, int64_t bytes) { held_back_[d] = bytes; }

  int64_t kv_cache_bytes(size_t module) const {
    if (layout_.modules[module].kind != ModuleKind::LAYER) return 0;
    return int64_t(options_.batch) * options_.max_seq_len * layout_.kv_bytes_per_token;
  }
  // What a unit needs where it computes, besides its weights: KV caches and the head's logits.
  int64_t runtime_bytes(const Unit& unit) const {
    int64_t bytes = 0;
    for (size_t module : unit) {
      bytes += kv_cache_bytes(module);
      if (layout_.modules[module].kind == ModuleKind::HEAD)
        bytes += int64_t(options_.batch) * layout_.logits_bytes_per_sequence;
    }
    return bytes;
  }

  struct Charge {
    size_t device;
    int64_t weight_bytes = 0, kv_cache_bytes = 0, activation_bytes = 0;
    int64_t total() const { return weight_bytes + kv_cache_bytes + activation_bytes; }
  };

  // What placing `unit` on device d adds: the weights on d, the rest on the device that computes
  // (d itself, or the cpu for disk, where an offloaded layer's cache and buffers live). Empty
  // when d is disk and there is no cpu.
  std::vector<Charge> charges(const Unit& unit, size_t d) const {
    const size_t compute = budgets_[d].device.computes() ? d : cpu_;
    if (compute == kNoDevice) return {};
    Charge on_device{d}, on_compute{compute};
    for (size_t module : unit) {
      on_device.weight_bytes += layout_.modules[module].weight_bytes;
      on_compute.kv_cache_bytes += kv_cache_bytes(module);
    }
    on_compute.activation_bytes = runtime_bytes(unit) - on_compute.kv_cache_bytes;  // the head's logits
    if (!active_[compute]) on_compute.activation_bytes += activation_reserve(compute);
    if (compute == d) {
      on_device.kv_cache_bytes = on_compute.kv_cache_bytes;
      on_device.activation_bytes = on_compute.activation_bytes;
      return {on_device};
    }
    return {on_device, on_compute};
  }

  // Empty when the unit fits on d within the limits; otherwise why not.
  std::string shortfall(const Unit& unit, size_t d, std::string_view limit_name) const {
    const std::vector<Charge> costs = charges(unit, d);
    if (costs.empty())
      return fmt::format("{} cannot take {}: disk layers keep their KV cache and buffers in cpu memory, and there is "
                         "no cpu device",
                         budgets_[d].device.name(), layout_.modules[unit.front()].name);
    for (const Charge& charge : costs) {
      const bool own = charge.device == d;
      const std::optional<int64_t> room = own ? left(d) : left_for_others(charge.device);
      if (!room || charge.total() <= *room) continue;
      return fmt::format("{} {} full{} (needs {}, {} left)", budgets_[charge.device].device.name(),
                         own ? limit_name : std::string_view("budget"),
                         own ? "" : fmt::format(" for the KV cache and buffers of {}", layout_.modules[unit.front()].name),
                         format_memory_size(charge.total()), format_memory_size(std::max<int64_t>(*room, 0)));
    }
    return "";
  }

  // Room for units placed on d (nullopt: unlimited).
  std::optional<int64_t> left(size_t d) const {
    const std::optional<int64_t> room = left_for_others(d);
    if (!room) return std::nullopt;
    return *room - held_back_[d];
  }
  // Room on d for charges of units placed elsewhere: all of it, including what is held back.
  std::optional<int64_t> left_for_others(size_t d) const {
    if (!limits_[d]) return std::nullopt;
    return *limits_[d] - usage_[d].total_bytes();
  }
  // Free memory by the budget, whatever a strategy's limits (for the "missing" arithmetic).
  std::optional<int64_t> unused(size_t d) const {
    if (!budgets_[d].bytes) return std::nullopt;
    return std::max<int64_t>(*budgets_[d].bytes - usage_[d].total_bytes(), 0);
  }

  void place(const Unit& unit, size_t d) {
    for (const Charge& charge : charges(unit, d)) {
      usage_[charge.device].weight_bytes += charge.weight_bytes;
      usage_[charge.device].kv_cache_bytes += charge.kv_cache_bytes;
      usage_[charge.device].activation_bytes += charge.activation_bytes;
      active_[charge.device] = true;
    }
  }

  const std::vector<DeviceUsage>& usage() const { return usage_; }

  int64_t activation_reserve(size_t d) const {
    // As the Engine sizes a pass: at least one decode step (a row per sequence) fits it.
    const int64_t rows = std::min<int64_t>(std::max<int64_t>(options_.max_rows, options_.batch),
                                           int64_t(options_.batch) * options_.max_seq_len);
    return rows * layout_.activation_bytes_per_row +
           (budgets_[d].device.is_gpu() ? options_.gpu_runtime_overhead_bytes : 0);
  }

 private:
  const std::vector<DeviceBudget>& budgets_;
  const ModelLayout& layout_;
  const PlanOptions& options_;
  std::vector<DeviceUsage> usage_;
  std::vector<bool> active_;                    // holds something that computes (activation buffers charged)
  std::vector<std::optional<int64_t>> limits_;  // nullopt: unlimited
  std::vector<int64_t> held_back_;
  size_t cpu_ = kNoDevice;
};

// A placement in progress: the device and reason of every module.
struct Assignment {
  std::vector<size_t> device;  // per module; kNoDevice until placed
  std::vector<std::string> reason;
  size_t n_placed_units = 0;   // units are placed in order: these are the first ones
  std::string stop_reason;     // why the next unit found no device
};

// The devices a fill goes through, and the balanced share that caps the GPUs among them.
struct FillLimits {
  std::vector<size_t> order;
  std::optional<int64_t> share;
};

std::string limit_name(const std::vector<DeviceBudget>& budgets, size_t d, const std::optional<int64_t>& share) {
  if (share && budgets[d].device.is_gpu() && (!budgets[d].bytes || *share < *budgets[d].bytes))
    return fmt::format("balanced share of {}", format_memory_size(*share));
  return "budget";
}

// Places units[first..] on the devices of `limits.order` in turn, never going back. Stops at the
// first unit no remaining device can take. `opening_reason` explains the first unit's device when
// a strategy skipped devices before the fill began.
void fill(const std::vector<Unit>& units, size_t first, const FillLimits& limits, const std::vector<DeviceBudget>& budgets,
          Ledger& ledger, Assignment& assignment, std::string opening_reason = "") {
  size_t cursor = 0;
  for (size_t u = first; u < units.size(); ++u) {
    std::vector<std::string> skipped;
    if (!opening_reason.empty()) skipped.push_back(std::exchange(opening_reason, ""));
    while (cursor < limits.order.size()) {
      const size_t d = limits.order[cursor];
      const std::string why_not = ledger.shortfall(units[u], d, limit_name(budgets, d, limits.share));
      if (why_not.empty()) break;
      skipped.push_back(why_not);
      ++cursor;
    }
    if (cursor == limits.order.size()) {
      assignment.stop_reason = fmt::format("{}", fmt::join(skipped, "; "));
      return;
    }
    const size_t d = limits.order[cursor];
    ledger.place(units[u], d);
    std::string reason;
    if (!skipped.empty()) {
      reason = fmt::format("{}; next device in order", fmt::join(skipped, "; "));
    } else if (const std::optional<int64_t> left = ledger.left(d)) {
      reason = fmt::format("fits in {} {} ({} left)", budgets[d].device.name(), limit_name(budgets, d, limits.share),
                           format_memory_size(*left));
    } else {
      reason = fmt::format("fits on {} (no limit)", budgets[d].device.name());
    }
    for (size_t module : units[u]) {
      assignment.device[module] = d;
      const bool rider = module != units[u].front();  // the tied head, placed with the embedding
      assignment.reason[module] = rider ? "tied to model.embed_tokens (same weight): " + reason : reason;
    }
    assignment.n_placed_units = u + 1;
  }
}

// Everything the strategies share: the inputs, the two settled reserves, and a fresh ledger per
// attempt that carries them.
struct Planner {
  const ModelLayout& layout;
  const std::vector<DeviceBudget>& budgets;
  const PlanOptions& options;
  std::vector<Unit> units;
  std::optional<size_t> offload_gpu;  // Accelerate's "main device": runs what is offloaded
  int64_t staging = 0;                // reserved on offload_gpu
  int64_t cpu_hold = 0;               // cpu room kept for the caches of disk layers
  std::vector<std::string> notes;

  Ledger fresh_ledger() const {
    Ledger ledger(budgets, layout, options);
    if (offload_gpu && staging > 0) ledger.reserve_staging(*offload_gpu, staging);
    if (ledger.cpu() != kNoDevice) ledger.hold_back(ledger.cpu(), cpu_hold);
    return ledger;
  }
  Assignment fresh_assignment() const {
    return {std::vector<size_t>(layout.modules.size(), kNoDevice), std::vector<std::string>(layout.modules.size()), 0,
            ""};
  }
  bool complete(const Assignment& assignment) const { return assignment.n_placed_units == units.size(); }

  bool try_fill(Ledger& ledger, Assignment& assignment, size_t first, const FillLimits& limits,
                std::string opening_reason = "") const {
    fill(units, first, limits, budgets, ledger, assignment, std::move(opening_reason));
    return complete(assignment);
  }

  // May leave units unplaced: the caller reports that, once the reserves are settled.
  void sequential(Ledger& ledger, Assignment& assignment) const {
    std::vector<size_t> order(budgets.size());
    std::iota(order.begin(), order.end(), 0);
    try_fill(ledger, assignment, 0, {order, std::nullopt});
  }

  // The smallest per-GPU limit under which units[first..] still fit on `gpus`, filled in order;
  // nullopt if they do not fit even at full budgets. `setup` places what comes before `first`.
  template <typename Setup>
  std::optional<int64_t> smallest_share(const std::vector<size_t>& gpus, size_t first, Setup&& setup) const {
    auto fits_under = [&](std::optional<int64_t> share) {
      Ledger ledger = fresh_ledger();
      Assignment assignment = fresh_assignment();
      setup(ledger, assignment);
      if (share)
        for (size_t d : gpus) ledger.cap(d, *share);
      return try_fill(ledger, assignment, first, {gpus, share});
    };
    if (!fits_under(std::nullopt)) return std::nullopt;
    int64_t low = 0, high = 1;
    while (!fits_under(high)) high *= 2;
    while (low + 1 < high) {  // invariant: high fits, low does not
      const int64_t middle = low + (high - low) / 2;
      (fits_under(middle) ? high : low) = middle;
    }
    return high;
  }

  void fall_back_to_filling(Ledger& ledger, Assignment& assignment) {
    notes.push_back(fmt::format("{}: the GPUs cannot hold the whole model, so each is filled to its budget in order and "
                                "the rest is offloaded",
                                strategy_name(options.strategy == DeviceMapStrategy::AUTO ? DeviceMapStrategy::BALANCED
                                                                                          : options.strategy)));
    sequential(ledger, assignment);
  }

  void balanced(Ledger& ledger, Assignment& assignment) {
    const std::vector<size_t> gpus = gpus_of(budgets);
    const std::optional<int64_t> share = smallest_share(gpus, 0, [](Ledger&, Assignment&) {});
    if (!share) return fall_back_to_filling(ledger, assignment);
    notes.push_back(fmt::format("balanced: each GPU holds at most {}, the smallest share that fits the model",
                                format_memory_size(*share)));
    for (size_t d : gpus) ledger.cap(d, *share);
    try_fill(ledger, assignment, 0, {gpus, share});
  }

  void balanced_low_0(Ledger& ledger, Assignment& assignment) {
    const std::vector<size_t> gpus = gpus_of(budgets);
    const size_t gpu0 = gpus.front();
    const std::vector<size_t> others(gpus.begin() + 1, gpus.end());
    // The fewest leading units GPU 0 must take for the other GPUs to hold the rest.
    for (size_t n_first = 0; n_first <= units.size(); ++n_first) {
      const std::vector<Unit> leading(units.begin(), units.begin() + std::ptrdiff_t(n_first));
      auto place_leading = [&](Ledger& trial, Assignment& trial_assignment) {
        fill(leading, 0, {{gpu0}, std::nullopt}, budgets, trial, trial_assignment);
      };
      Ledger probe = fresh_ledger();
      Assignment probe_assignment = fresh_assignment();
      place_leading(probe, probe_assignment);
      if (probe_assignment.n_placed_units < n_first) break;  // GPU 0 cannot take that many
      const std::optional<int64_t> share = smallest_share(others, n_first, place_leading);
      if (!share) continue;
      const std::string kept_free = fmt::format("balanced_low_0 keeps {} for generation", budgets[gpu0].device.name());
      notes.push_back(n_first == 0 ? kept_free + "; the model is balanced over the other GPUs"
                                   : fmt::format("balanced_low_0: the other GPUs cannot hold the whole model, so {} "
                                                 "takes the first {} unit(s)",
                                                 budgets[gpu0].device.name(), n_first));
      notes.push_back(fmt::format("balanced_low_0: each other GPU holds at most {}", format_memory_size(*share)));
      place_leading(ledger, assignment);
      for (size_t d : others) ledger.cap(d, *share);
      try_fill(ledger, assignment, n_first, {others, share}, n_first == 0 ? kept_free : "");
      return;
    }
    fall_back_to_filling(ledger, assignment);
  }

  void explicit_map(Ledger& ledger, Assignment& assignment) const {
    const std::vector<ExplicitPlacement> placements = resolve_explicit_device_map(options.explicit_map, layout);
    for (size_t module = 0; module < placements.size(); ++module) {
      const size_t d = ledger.find(placements[module].device);
      if (d == kNoDevice)
        fail("{}: puts {} on {}, which is not among the devices ({})", options.explicit_map.source,
             layout.modules[module].name, placements[module].device.name(), device_list(budgets));
      if (!budgets[d].device.computes() && ledger.cpu() == kNoDevice)
        fail("{}: puts {} on disk, but disk layers keep their KV cache and buffers in cpu memory and there is no cpu "
             "device",
             options.explicit_map.source, layout.modules[module].name);
      assignment.device[module] = d;
      const bool tied_head = layout.tied_head && layout.modules[module].kind == ModuleKind::HEAD;
      assignment.reason[module] = fmt::format("explicit map: \"{}\"{}", placements[module].key,
                                              tied_head ? " (tied to model.embed_tokens)" : "");
    }
    for (const Unit& unit : units) ledger.place(unit, assignment.device[unit.front()]);
    assignment.n_placed_units = units.size();
    for (const DeviceUsage& usage : ledger.usage()) {
      if (!usage.budget_bytes || usage.total_bytes() <= *usage.budget_bytes) continue;
      fail("{}: {} would hold {} (weights {}, KV cache {}, activations {}, offload staging {}), {} over its budget of "
           "{}",
           options.explicit_map.source, usage.device.name(), format_memory_size(usage.total_bytes()),
           format_memory_size(usage.weight_bytes), format_memory_size(usage.kv_cache_bytes),
           format_memory_size(usage.activation_bytes), format_memory_size(usage.staging_bytes),
           format_memory_size(usage.total_bytes() - *usage.budget_bytes), format_memory_size(*usage.budget_bytes));
    }
  }

  void run(DeviceMapStrategy strategy, Ledger& ledger, Assignment& assignment) {
    switch (strategy) {
      case DeviceMapStrategy::SEQUENTIAL: return sequential(ledger, assignment);
      case DeviceMapStrategy::BALANCED: return balanced(ledger, assignment);
      case DeviceMapStrategy::BALANCED_LOW_0: return balanced_low_0(ledger, assignment);
      case DeviceMapStrategy::EXPLICIT: return explicit_map(ledger, assignment);
      case DeviceMapStrategy::AUTO: break;
    }
    fail("internal: strategy auto must be resolved before planning");
  }

  // Where unit u is or, unplaced, could still go: only down the order, past the GPUs.
  bool off_gpu(const Assignment& assignment, size_t module) const {
    const size_t d = assignment.device[module];
    return d == kNoDevice || !budgets[d].device.is_gpu();
  }
  bool on_disk_or_unplaced(const Assignment& assignment, size_t module) const {
    const size_t d = assignment.device[module];
    return d == kNoDevice || budgets[d].device.kind == DeviceKind::DISK;
  }

  // Two staging buffers of the largest unit off the GPUs. The embedding is left out: a lookup
  // reads only the rows of the prompt's tokens.
  int64_t staging_needed(const Assignment& assignment) const {
    int64_t largest = 0;
    for (size_t module = 0; module < layout.modules.size(); ++module)
      if (off_gpu(assignment, module) && layout.modules[module].kind != ModuleKind::EMBED)
        largest = std::max(largest, layout.modules[module].weight_bytes);
    return kOffloadStagingBuffers * largest;
  }

  // The caches and logits of the units on disk (or still unplaced, when there is a disk to go to).
  int64_t cpu_hold_needed(const Assignment& assignment, const Ledger& ledger) const {
    if (ledger.find(DeviceId::disk()) == kNoDevice) return 0;
    int64_t bytes = 0;
    for (const Unit& unit : units)
      if (on_disk_or_unplaced(assignment, unit.front())) bytes += ledger.runtime_bytes(unit);
    return bytes;
  }
};

[[noreturn]] void fail_does_not_fit(const Planner& planner, const Assignment& assignment, const Ledger& ledger) {
  const std::vector<Unit>& units = planner.units;
  const ModelLayout& layout = planner.layout;
  int64_t unplaced = 0, smallest = INT64_MAX;
  for (size_t u = assignment.n_placed_units; u < units.size(); ++u) {
    int64_t bytes = ledger.runtime_bytes(units[u]);
    for (size_t module : units[u]) bytes += layout.modules[module].weight_bytes;
    unplaced += bytes;
    smallest = std::min(smallest, bytes);
  }
  int64_t unused = 0, largest_gap = 0;
  std::vector<std::string> devices;
  for (size_t d = 0; d < planner.budgets.size(); ++d) {
    const std::optional<int64_t> gap = ledger.unused(d);
    devices.push_back(fmt::format("{} {}", planner.budgets[d].device.name(),
                                  gap ? format_memory_size(*planner.budgets[d].bytes) : "unlimited"));
    if (!gap) continue;
    unused += *gap;
    largest_gap = std::max(largest_gap, *gap);
  }
  const int64_t missing = std::max({unplaced - unused, smallest - largest_gap, int64_t(1)});
  const std::string& first = layout.modules[units[assignment.n_placed_units].front()].name;
  const std::string& last = layout.modules[units.back().front()].name;
  fail("the model does not fit: {}{} ({} of weights and KV cache) found no device with room left ({}); the devices "
       "({}) have {} unused, so at least {} more is needed. Raise --max-memory or --devices, lower --max-seq-len or "
       "--batch, or allow offloading to disk (disk in --max-memory or --devices)",
       first, first == last ? "" : fmt::format(" to {}", last), format_memory_size(unplaced), assignment.stop_reason,
       fmt::join(devices, ", "), format_memory_size(unused), format_memory_size(missing));
}

DeviceMapStrategy resolve_auto(DeviceMapStrategy strategy, const std::vector<DeviceBudget>& budgets,
                               std::vector<std::string>& notes) {
  const size_t n_gpus = gpus_of(budgets).size();
  if (strategy == DeviceMapStrategy::AUTO) {
    notes.push_back(n_gpus > 1 ? fmt::format("auto: {} GPUs, so balanced (as Accelerate)", n_gpus)
                               : "auto: fewer than two GPUs, so sequential");
    return n_gpus > 1 ? DeviceMapStrategy::BALANCED : DeviceMapStrategy::SEQUENTIAL;
  }
  // One GPU has nothing to balance; low_0 needs a GPU besides GPU 0 (Accelerate drops low_zero too).
  if ((strategy == DeviceMapStrategy::BALANCED || strategy == DeviceMapStrategy::BALANCED_LOW_0) && n_gpus < 2) {
    notes.push_back(fmt::format("{}: fewer than two GPUs, so sequential", strategy_name(strategy)));
    return DeviceMapStrategy::SEQUENTIAL;
  }
  return strategy;
}

void check_inputs(const ModelLayout& layout, const std::vector<DeviceBudget>& budgets, const PlanOptions& options) {
  if (options.batch < 1) fail("--batch must be >= 1, got {}", options.batch);
  if (options.max_seq_len < 1) fail("--max-seq-len must be >= 1, got {}", options.max_seq_len);
  if (options.max_rows < 1) fail("rows per forward pass must be >= 1, got {}", options.max_rows);
  // Caches beyond an exabyte fit nowhere, and would overflow the byte arithmetic below.
  const double kv_bytes = double(options.batch) * double(options.max_seq_len) * double(layout.kv_bytes_per_token) *
                          double(layout.modules.size());
  if (kv_bytes > 1e18)
    fail("--batch {} x --max-seq-len {} needs about {:.3g} bytes of KV cache, more than any machine holds", options.batch,
         options.max_seq_len, kv_bytes);
  if (budgets.empty()) fail("no devices to place the model on");
  for (size_t d = 0; d < budgets.size(); ++d) {
    if (d > 0 && !(budgets[d - 1].device < budgets[d].device))
      fail("internal: device budgets must be in device order without repeats ({} after {})", budgets[d].device.name(),
           budgets[d - 1].device.name());
    if (!budgets[d].bytes && budgets[d].device.kind != DeviceKind::DISK)
      fail("{} needs a memory budget; only disk may be unlimited", budgets[d].device.name());
  }
  if (layout.modules.empty()) fail("internal: empty model layout");
}

DevicePlan make_plan(const Planner& planner, DeviceMapStrategy applied, const Ledger& ledger,
                     const Assignment& assignment) {
  const ModelLayout& layout = planner.layout;
  DevicePlan plan;
  plan.strategy = planner.options.strategy;
  plan.applied = applied;
  plan.max_seq_len = planner.options.max_seq_len;
  plan.batch = planner.options.batch;
  plan.notes = planner.notes;
  plan.devices = ledger.usage();
  bool offloaded = false;
  for (size_t module = 0; module < layout.modules.size(); ++module) {
    const ModuleWeights& weights = layout.modules[module];
    const size_t d = assignment.device[module];
    const DeviceId device = planner.budgets[d].device;
    plan.modules.push_back({weights.name, weights.kind, weights.layer, device, weights.weight_bytes,
                            ledger.kv_cache_bytes(module), assignment.reason[module]});
    DeviceUsage& usage = plan.devices[d];
    switch (weights.kind) {
      case ModuleKind::EMBED: plan.placement.embed = device; break;
      case ModuleKind::LAYER: plan.placement.layers.push_back(device); break;
      case ModuleKind::NORM: plan.placement.norm = device; break;
      case ModuleKind::HEAD: plan.placement.head = device; break;
    }
    if (weights.kind == ModuleKind::LAYER) {
      usage.layers.push_back(weights.layer);
    } else {
      usage.other_modules.push_back(weights.name);
    }
    offloaded |= !device.is_gpu() && weights.kind != ModuleKind::EMBED;
  }
  if (offloaded && planner.offload_gpu) plan.placement.offload_gpu = planner.budgets[*planner.offload_gpu].device;
  return plan;
}

}  // namespace

std::optional<int64_t> DeviceUsage::headroom_bytes() const {
  if (!budget_bytes) return std::nullopt;
  return *budget_bytes - total_bytes();
}

std::string_view strategy_name(DeviceMapStrategy strategy) {
  switch (strategy) {
    case DeviceMapStrategy::AUTO: return "auto";
    case DeviceMapStrategy::BALANCED: return "balanced";
    case DeviceMapStrategy::BALANCED_LOW_0: return "balanced_low_0";
    case DeviceMapStrategy::SEQUENTIAL: return "sequential";
    case DeviceMapStrategy::EXPLICIT: return "explicit";
  }
  return "?";
}

std::optional<DeviceMapStrategy> parse_device_map_strategy(std::string_view text) {
  for (DeviceMapStrategy strategy : {DeviceMapStrategy::AUTO, DeviceMapStrategy::BALANCED,
                                     DeviceMapStrategy::BALANCED_LOW_0, DeviceMapStrategy::SEQUENTIAL})
    if (text == strategy_name(strategy)) return strategy;
  return std::nullopt;
}

std::string format_layer_ranges(const std::vector<int>& layers) {
  std::vector<std::string> ranges;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    ranges.push_back(i == j ? fmt::format("{}", layers[i]) : fmt::format("{}-{}", layers[i], layers[j]));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(ranges, ","));
}

namespace {

// The plan of the layout without the experts of layers [0, cpu_moe_layers), on budgets whose cpu
// holds those experts first.
DevicePlan plan_with_experts_in_cpu(const ModelLayout& layout, const std::vector<DeviceBudget>& budgets,
                                    const PlanOptions& options) {
  ModelLayout rest = layout;
  std::vector<int> layers;
  int64_t expert_bytes = 0;
  for (ModuleWeights& module : rest.modules) {
    if (module.kind != ModuleKind::LAYER || module.layer >= options.cpu_moe_layers || module.expert_bytes == 0) continue;
    module.weight_bytes -= module.expert_bytes;
    expert_bytes += module.expert_bytes;
    module.expert_bytes = 0;
    layers.push_back(module.layer);
  }
  const std::string option = options.cpu_moe_layers == INT32_MAX ? std::string("--cpu-moe")
                                                                  : fmt::format("--n-cpu-moe {}", options.cpu_moe_layers);
  if (layers.empty()) fail("{}: the model has no experts in those layers to keep in cpu memory", option);
  std::vector<DeviceBudget> rest_budgets = budgets;
  const auto cpu = std::find_if(rest_budgets.begin(), rest_budgets.end(),
                                [](const DeviceBudget& budget) { return budget.device == DeviceId::cpu(); });
  if (cpu == rest_budgets.end()) fail("{} keeps experts in cpu memory, but cpu is not among the devices", option);
  if (cpu->bytes && *cpu->bytes < expert_bytes)
    fail("{}: the experts of layers {} take {}, more than the cpu budget of {}", option, format_layer_ranges(layers),
         format_memory_size(expert_bytes), format_memory_size(*cpu->bytes));
  if (cpu->bytes) *cpu->bytes -= expert_bytes;
  PlanOptions rest_options = options;
  rest_options.cpu_moe_layers = 0;
  DevicePlan plan = plan_device_map(rest, rest_budgets, rest_options);
  for (DeviceUsage& usage : plan.devices) {
    if (usage.device != DeviceId::cpu()) continue;
    usage.budget_bytes = cpu->bytes ? std::optional<int64_t>(*cpu->bytes + expert_bytes) : std::nullopt;
    usage.weight_bytes += expert_bytes;
  }
  plan.cpu_expert_bytes = expert_bytes;
  plan.placement.experts_in_cpu.assign(plan.placement.layers.size(), false);
  for (int il : layers) plan.placement.experts_in_cpu[size_t(il)] = true;
  plan.notes.push_back(fmt::format("{}: the experts of layers {} ({}) stay in cpu memory, which computes the ones each "
                                   "token chooses",
                                   option, format_layer_ranges(layers), format_memory_size(expert_bytes)));
  return plan;
}

}  // namespace

DevicePlan plan_device_map(const ModelLayout& layout, const std::vector<DeviceBudget>& budgets,
                           const PlanOptions& options) {
  if (options.cpu_moe_layers > 0) return plan_with_experts_in_cpu(layout, budgets, options);
  check_inputs(layout, budgets, options);
  Planner planner{layout, budgets, options, units_of(layout), std::nullopt, 0, 0, {}};
  const std::vector<size_t> gpus = gpus_of(budgets);
  const bool can_offload = std::any_of(budgets.begin(), budgets.end(),
                                       [](const DeviceBudget& budget) { return !budget.device.is_gpu(); });
  if (!gpus.empty() && can_offload) planner.offload_gpu = gpus.front();
  std::vector<std::string> fixed_notes;
  const DeviceMapStrategy applied = resolve_auto(options.strategy, budgets, fixed_notes);

  // Both reserves only grow from round to round (more reserved pushes more units down the order,
  // which needs as much or more), and each is bounded, so this settles in a few rounds.
  while (true) {
    planner.notes = fixed_notes;
    Ledger ledger = planner.fresh_ledger();
    Assignment assignment = planner.fresh_assignment();
    planner.run(applied, ledger, assignment);
    const int64_t staging = planner.offload_gpu ? planner.staging_needed(assignment) : 0;
    if (planner.offload_gpu && staging + ledger.activation_reserve(*planner.offload_gpu) >
                                   budgets[*planner.offload_gpu].bytes.value_or(INT64_MAX)) {
      fixed_notes.push_back(fmt::format("{} cannot hold two staging buffers of {} besides its activation buffers ({}) "
                                        "in its budget of {}, so layers off the GPUs must run on the cpu",
                                        budgets[*planner.offload_gpu].device.name(), format_memory_size(staging / 2),
                                        format_memory_size(ledger.activation_reserve(*planner.offload_gpu)),
                                        format_memory_size(*budgets[*planner.offload_gpu].bytes)));
      planner.offload_gpu.reset();
      planner.staging = 0;
      continue;
    }
    const int64_t cpu_hold = planner.cpu_hold_needed(assignment, ledger);
    if (staging > planner.staging || cpu_hold > planner.cpu_hold) {
      planner.staging = std::max(planner.staging, staging);
      planner.cpu_hold = std::max(planner.cpu_hold, cpu_hold);
      continue;
    }
    if (!planner.complete(assignment)) fail_does_not_fit(planner, assignment, ledger);
    return make_plan(planner, applied, ledger, assignment);
  }
}

}  // namespace shardlm
