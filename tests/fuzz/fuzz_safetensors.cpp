// libFuzzer target for parse_safetensors and the expert naming a Checkpoint applies after it
// (name_experts_alike: renamed tensors and per-expert views of fused ones). Any input must either
// parse into tensors that lie inside the input and match dtype x shape, or fail with shardlm::Error. Any other exception escapes and
// is reported as a crash, as are sanitizer findings and broken invariants (trap).
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "core/error.h"
#include "io/expert_tensors.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    std::map<std::string, shardlm::TensorInfo> tensors;
    for (shardlm::TensorInfo& tensor : shardlm::parse_safetensors(bytes, "fuzz.safetensors"))
      tensors.emplace(tensor.name, std::move(tensor));
    shardlm::name_experts_alike(tensors);
    for (const auto& [name, tensor] : tensors) {
      const bool inside = tensor.data >= bytes.data() && tensor.n_bytes <= size_t(bytes.data() + size - tensor.data);
      if (!inside || uint64_t(tensor.numel()) * shardlm::dtype_size(tensor.dtype) != tensor.n_bytes) __builtin_trap();
      // Touch both ends so AddressSanitizer would catch a pointer outside the input.
      if (tensor.n_bytes > 0) {
        volatile std::byte first = tensor.data[0];
        volatile std::byte last = tensor.data[tensor.n_bytes - 1];
        (void)first;
        (void)last;
      }
    }
  } catch (const shardlm::Error&) {
  }
  return 0;
}
