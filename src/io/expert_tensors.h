// Mixture-of-experts checkpoints store their experts in three ways: Mixtral's
// block_sparse_moe.experts.K.{w1,w3,w2}.weight, Qwen's mlp.experts.K.{gate,up,down}_proj.weight, and
// Transformers 5's in-memory layout saved as it is, fused over the experts
// (mlp.experts.gate_up_proj [E, 2I, H], gate rows then up rows; mlp.experts.down_proj [E, H, I]).
// A Checkpoint presents all three under the Qwen per-expert names, with Mixtral's router
// (block_sparse_moe.gate.weight) as mlp.gate.weight, so plans, device maps and the model see one
// naming. Fused tensors become per-expert views of their bytes: nothing is copied.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "io/safetensors.h"

namespace shardlm {

// A dotted path (a tensor name, a module name or a plan pattern) with Mixtral's spelling replaced:
// "layers.*.block_sparse_moe.experts.*.w1" -> "layers.*.mlp.experts.*.gate_proj". Other paths are
// returned as they are.
std::string canonical_expert_path(std::string_view path);

// Renames and splits the expert tensors of `tensors` in place; other tensors are left as they are.
// A renamed or split tensor keeps its stored name in TensorInfo::stored_as, for messages. Fails
// naming the file and tensor for a fused tensor that is not 3-D (or whose gate/up rows are odd), and
// for an expert stored under two spellings.
void name_experts_alike(std::map<std::string, TensorInfo>& tensors);

}  // namespace shardlm
