// Measures how fast the CPU threads can stream memory, the bound on decode speed: every decoded
// token reads every weight once.
#pragma once

#include <cstddef>

namespace shardlm::cpu {

// Best-of-several GB/s (1e9 bytes/s) for all OpenMP threads summing a buffer of `bytes`.
double measure_read_bandwidth(size_t bytes = size_t(512) << 20);

}  // namespace shardlm::cpu
