// `bench --random SHAPE --save DIR`: a shape's checkpoint with random weights, written without a
// GPU, so that a big shape can be benchmarked on the CPU or through a device map (which read a
// checkpoint), as Transformers' peer script saves one for its own runs.
#pragma once

#include <filesystem>
#include <string>

namespace shardlm::cli {

// DIR/config.json (the shape's file) and DIR/model.safetensors: every tensor the shape's model
// reads, in the shape's dtype (bf16 when it names none). Norm weights are 1; the rest uniform in
// ±1/√(inputs), so activations keep their scale through the layers and routing spreads over the
// experts. The values depend only on the tensor's name. Experts are stored one by one under Qwen's
// names (mlp.experts.K.gate_proj, ...), which shardlm reads for every MoE family and Transformers
// reads for Qwen2-MoE and Qwen3-MoE as their published checkpoints are.
void save_random_checkpoint(const std::string& shape, const std::filesystem::path& dir);

}  // namespace shardlm::cli
