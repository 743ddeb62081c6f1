// How fast the CPU decode matmul streams weights, against a plain parallel read of the same machine
// (ReadBandwidthProbe, the floor `--cpu-moe` and the offload planner use). One activation row, as a
// decode step of one sequence, in two cases:
//   experts  Qwen3-30B-A3B's chosen experts: 8 of 128 a layer, gate/up [768, 2048] as one matmul
//            group and down [2048, 768] as another, as add_routed_experts runs them;
//   dense    Llama-3-8B's MLP: gate/up [14336, 4096] as one group, down [4096, 14336].
// Prints one JSON line: milliseconds and GB/s of the matmuls, the probe's GB/s before and after, and
// their ratio. Built by hand after the library:
//   g++ -O3 -std=c++20 -mavx2 -mfma -mf16c -fopenmp -Isrc bench/cpu_matmul_probe.cpp \
//       build/src/libshardlm.a -lfmt -o cpu_matmul_probe
//   OMP_NUM_THREADS=16 ./cpu_matmul_probe experts 200
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/read_bandwidth.h"
#include "core/dtype.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/swiglu.h"

using namespace shardlm;

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

struct Case {
  int64_t dim, ff;        // hidden and intermediate widths
  int sets_held;          // experts (or layers) held, so that a token's reads miss the caches
  int chosen_per_layer;   // sets a layer reads for one row
  int layers_per_token;
};

Case case_named(const std::string& name) {
  if (name == "experts") return {2048, 768, 2 * 128, 8, 4};
  if (name == "dense") return {4096, 14336, 4, 1, 4};
  std::fprintf(stderr, "unknown case %s (experts or dense)\n", name.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "experts";
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 100;
  const Case shape = case_named(name);
  const int64_t matrix = shape.dim * shape.ff;  // elements of one gate, up or down
  const int64_t set_elements = 3 * matrix;
  std::vector<uint16_t> weights(size_t(set_elements * shape.sets_held));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(weights.size()); ++i)
    weights[size_t(i)] = f32_to_bf16(float(int((i * 2654435761u) % 2001) - 1000) * 1e-5f);

  std::vector<float> x(size_t(shape.dim), 0.5f), out(size_t(shape.chosen_per_layer * shape.dim));
  std::vector<float> gate(size_t(shape.chosen_per_layer * shape.ff)), up(gate.size());
  std::mt19937 rng(1);
  std::vector<int> sets(size_t(shape.sets_held));
  for (size_t i = 0; i < sets.size(); ++i) sets[i] = int(i);
  std::vector<cpu::MatmulProblem> gate_up, down;
  const auto view = [&](int set, int which, int64_t rows, int64_t cols) {
    return WeightView{DType::BF16, weights.data() + size_t(set * set_elements + which * matrix), rows, cols, 0};
  };
  double gate_up_seconds = 0, down_seconds = 0;  // summed over the timed tokens
  const auto run_token = [&] {
    for (int layer = 0; layer < shape.layers_per_token; ++layer) {
      std::shuffle(sets.begin(), sets.end(), rng);
      gate_up.clear();
      down.clear();
      for (int e = 0; e < shape.chosen_per_layer; ++e) {
        const int set = sets[size_t(e)];
        gate_up.push_back({x.data(), 1, view(set, 0, shape.ff, shape.dim), {}, gate.data() + e * shape.ff});
        gate_up.push_back({x.data(), 1, view(set, 1, shape.ff, shape.dim), {}, up.data() + e * shape.ff});
        down.push_back({gate.data() + e * shape.ff, 1, view(set, 2, shape.dim, shape.ff), {}, out.data() + e * shape.dim});
      }
      const auto start = Clock::now();
      cpu::matmul_group(gate_up);
      const auto gate_up_end = Clock::now();
      cpu::silu_mul(gate.data(), up.data(), int64_t(gate.size()), gate.data());
      const auto down_start = Clock::now();
      cpu::matmul_group(down);
      gate_up_seconds += seconds(start, gate_up_end);
      down_seconds += seconds(down_start, Clock::now());
    }
  };

  const cpu::ReadBandwidthProbe probe;
  const double probe_before = probe.measure();
  for (int i = 0; i < 5; ++i) run_token();
  gate_up_seconds = down_seconds = 0;
  std::vector<double> times;
  for (int i = 0; i < tokens; ++i) {
    const auto start = Clock::now();
    run_token();
    times.push_back(seconds(start, Clock::now()));
  }
  const double probe_after = probe.measure();
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double bytes = double(shape.layers_per_token * shape.chosen_per_layer * set_elements * 2);
  const double gbps = bytes / median / 1e9, floor_gbps = std::max(probe_before, probe_after);
  // Gate/up read two thirds of the bytes, down one third.
  const double gate_up_gbps = bytes * 2 / 3 * tokens / gate_up_seconds / 1e9;
  const double down_gbps = bytes / 3 * tokens / down_seconds / 1e9;
  std::printf("{\"case\": \"%s\", \"ms_per_token\": %.3f, \"gbps\": %.1f, \"gate_up_gbps\": %.1f, "
              "\"down_gbps\": %.1f, \"probe_gbps\": [%.1f, %.1f], \"ratio_to_probe\": %.3f, \"sink\": %g}\n",
              name.c_str(), median * 1e3, gbps, gate_up_gbps, down_gbps, probe_before, probe_after, floor_gbps / gbps,
              double(out[0]));
}
