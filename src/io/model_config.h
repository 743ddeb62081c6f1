// The model hyper-parameters from a Hugging Face config.json, for the decoder families shardlm
// runs (four dense, three mixture-of-experts). Keys absent from the file take the defaults of the
// matching Transformers config class (which differ per family), and the old (rope_scaling +
// rope_theta) and Transformers 5 (rope_parameters) RoPE spellings are both read, so model code sees
// one normalised struct and never the JSON.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace shardlm {

// From "architectures": LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
// MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM.
enum class ModelArch { LLAMA, MISTRAL, QWEN2, QWEN3, MIXTRAL, QWEN2_MOE, QWEN3_MOE };

enum class RopeType { DEFAULT, LINEAR, LLAMA3, YARN };

struct RopeScaling {
  RopeType type = RopeType::DEFAULT;
  float factor = 1.0f;
  float low_freq_factor = 1.0f, high_freq_factor = 4.0f;  // llama3
  int original_max_position_embeddings = 0;                // llama3, yarn
  float beta_fast = 32.0f, beta_slow = 1.0f;               // yarn
  std::optional<float> attention_factor;                   // yarn (mscale); absent -> 0.1*ln(factor)+1 computed by the model
  std::optional<float> mscale, mscale_all_dim;             // yarn variants, if present
  bool truncate = true;                                    // yarn
};

// The sparse MLP of a mixture-of-experts model: a router picks num_experts_per_tok of num_experts
// SwiGLU experts per token (softmax in f32, then top-k), and their outputs are summed with the
// routing weights. Absent (num_experts == 0) for dense models.
struct MoeConfig {
  int num_experts = 0;                      // "num_local_experts" (Mixtral) or "num_experts" (Qwen)
  int num_experts_per_tok = 0;
  int expert_intermediate_size = 0;         // Mixtral: intermediate_size; Qwen: moe_intermediate_size
  int shared_expert_intermediate_size = 0;  // Qwen2-MoE's always-on shared expert; 0: none
  bool norm_topk_prob = true;               // renormalise the chosen experts' weights to sum to 1
  // Qwen: a layer is sparse unless it is in mlp_only_layers or (layer + 1) % decoder_sparse_step != 0;
  // the others have a dense MLP of intermediate_size. Mixtral: every layer is sparse.
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;

  bool present() const { return num_experts > 0; }
};

struct ModelConfig {
  ModelArch arch = ModelArch::LLAMA;
  std::string architecture_name;  // as written in config.json, e.g. "Qwen2ForCausalLM"
  int hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0,
      head_dim = 0, vocab_size = 0, max_position_embeddings = 0;
  float rms_norm_eps = 0.0f;
  float rope_theta = 0.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;         // q, k, v projections: Qwen2 always; Llama and Qwen3 from "attention_bias"; Mistral never
  bool attention_output_bias = false;  // o_proj: Llama and Qwen3 follow "attention_bias"; Qwen2 and Mistral never
  bool mlp_bias = false;               // gate/up/down: Llama "mlp_bias" only
  bool qk_norm = false;                // per-head RMSNorm on q and k: Qwen3
  // Mistral when set; Qwen2/Qwen3 only with use_sliding_window and only if every layer slides
  // (a mix of sliding and full layers is refused rather than approximated).
  std::optional<int> sliding_window;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;      // "eos_token_id" may be one id or a list
  std::optional<DType> torch_dtype;    // "torch_dtype" or (Transformers 5) "dtype": float32/float16/bfloat16
  std::string hidden_act;              // always "silu" (anything else is an error)
  MoeConfig moe;

  // Whether layer `layer`'s MLP is a mixture of experts (else a dense MLP of intermediate_size).
  bool is_sparse_layer(int layer) const;

  static ModelConfig from_dir(const std::filesystem::path& model_dir);  // reads DIR/config.json
  static ModelConfig parse(std::string_view json_text, const std::string& source_name);
};

}  // namespace shardlm
