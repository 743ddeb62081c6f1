// Whether a pointer is aligned for a kernel's vector loads: the launchers pick a vectorised kernel
// only for buffers that are (a null pointer counts as aligned).
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardlm {

inline bool is_aligned(const void* pointer, size_t bytes) { return reinterpret_cast<uintptr_t>(pointer) % bytes == 0; }

}  // namespace shardlm
