// config.json parsing. Defaults were read from the Transformers 5 config classes (LlamaConfig,
// MistralConfig, Qwen2Config, Qwen3Config, MixtralConfig, Qwen2MoeConfig, Qwen3MoeConfig) and RoPE handling from modeling_rope_utils.py
// (RotaryEmbeddingConfigMixin); where a family ignores a key (Mistral and Qwen2 hard-code their
// biases), so do we. Values the forward pass would divide by, or that would silently change the
// model, are validated here so the model code can trust the struct.
#include "io/model_config.h"

#include <algorithm>
#include <array>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_fields.h"
#include "io/mapped_file.h"

namespace shardlm {

namespace {

// What each Transformers config class assumes when config.json leaves a key out.
struct ArchDefaults {
  std::string_view architecture_name;
  ModelArch arch;
  std::optional<int> num_key_value_heads;  // nullopt: num_attention_heads
  std::optional<int> head_dim;             // nullopt: hidden_size / num_attention_heads
  int max_position_embeddings;
  std::optional<int> bos_token_id;
  std::optional<int> eos_token_id;
  float rms_norm_eps;
  float rope_theta;  // the class's default_theta (RotaryEmbeddingConfigMixin's 10000 unless overridden)
};

const std::array<ArchDefaults, 7> kArchitectures = {{
    {"LlamaForCausalLM", ModelArch::LLAMA, std::nullopt, std::nullopt, 2048, 1, 2, 1e-6f, 10000.0f},
    {"MistralForCausalLM", ModelArch::MISTRAL, 8, std::nullopt, 4096 * 32, 1, 2, 1e-6f, 10000.0f},
    {"Qwen2ForCausalLM", ModelArch::QWEN2, 32, std::nullopt, 32768, std::nullopt, std::nullopt, 1e-6f, 10000.0f},
    {"Qwen3ForCausalLM", ModelArch::QWEN3, 32, 128, 32768, std::nullopt, std::nullopt, 1e-6f, 10000.0f},
    {"MixtralForCausalLM", ModelArch::MIXTRAL, 8, std::nullopt, 4096 * 32, 1, 2, 1e-5f, 1000000.0f},
    {"Qwen2MoeForCausalLM", ModelArch::QWEN2_MOE, 16, std::nullopt, 32768, std::nullopt, std::nullopt, 1e-6f, 10000.0f},
    {"Qwen3MoeForCausalLM", ModelArch::QWEN3_MOE, 4, std::nullopt, 32768, std::nullopt, std::nullopt, 1e-6f, 10000.0f},
}};
constexpr int kDefaultSlidingWindow = 4096;     // Mistral, and the Qwen families when use_sliding_window
constexpr int kDefaultMaxWindowLayers = 28;     // the Qwen families

const ArchDefaults& read_architecture(const JsonFields& fields) {
  const auto found = fields.object().find("architectures");
  if (found == fields.object().end() || found->is_null()) {
    fail("{}: missing required key \"architectures\"", fields.source_name());
  }
  if (!found->is_array() || found->empty() || !(*found)[0].is_string()) {
    fields.fail_key("architectures", "must be a non-empty list of class names, got " + describe_json(*found));
  }
  const auto& name = (*found)[0].get_ref<const std::string&>();
  for (const ArchDefaults& defaults : kArchitectures) {
    if (defaults.architecture_name == name) return defaults;
  }
  std::vector<std::string_view> supported;
  for (const ArchDefaults& defaults : kArchitectures) supported.push_back(defaults.architecture_name);
  fail("{}: unknown architecture \"{}\", supported: {}", fields.source_name(), name, fmt::join(supported, ", "));
}

int require_positive(const JsonFields& fields, std::string_view key, int value) {
  if (value <= 0) fields.fail_key(key, fmt::format("must be positive, got {}", value));
  return value;
}

float require_positive(const JsonFields& fields, std::string_view key, float value) {
  if (!(value > 0.0f)) fields.fail_key(key, fmt::format("must be positive, got {}", value));
  return value;
}

int read_required_size(const JsonFields& fields, std::string_view key) {
  const std::optional<int> value = fields.get_int(key);
  if (!value) fail("{}: missing required key \"{}\"", fields.source_name(), key);
  return require_positive(fields, key, *value);
}

// HF distinguishes an absent key (class default) from an explicit null (derived value) here.
int read_num_key_value_heads(const JsonFields& fields, const ArchDefaults& defaults, int num_attention_heads) {
  if (!fields.contains("num_key_value_heads")) return defaults.num_key_value_heads.value_or(num_attention_heads);
  const std::optional<int> value = fields.get_int("num_key_value_heads");
  return value ? require_positive(fields, "num_key_value_heads", *value) : num_attention_heads;
}

int read_head_dim(const JsonFields& fields, const ArchDefaults& defaults, int hidden_size, int num_attention_heads) {
  if (const std::optional<int> value = fields.get_int("head_dim")) return require_positive(fields, "head_dim", *value);
  if (defaults.head_dim) return *defaults.head_dim;
  if (hidden_size % num_attention_heads != 0) {
    fail("{}: hidden_size {} is not divisible by num_attention_heads {}, and no head_dim is given", fields.source_name(),
         hidden_size, num_attention_heads);
  }
  return hidden_size / num_attention_heads;
}

std::optional<DType> read_torch_dtype(const JsonFields& fields) {
  // Transformers 5 writes "dtype"; older versions wrote "torch_dtype".
  const std::string_view key = fields.has_value("dtype") ? "dtype" : "torch_dtype";
  const std::optional<std::string> name = fields.get_string(key);
  if (!name) return std::nullopt;
  if (*name == "float32") return DType::F32;
  if (*name == "float16") return DType::F16;
  if (*name == "bfloat16") return DType::BF16;
  fail("{}: {} \"{}\" is not supported, supported: float32, float16, bfloat16", fields.source_name(), key, *name);
}

// A required RoPE parameter; `rope` is the rope_scaling/rope_parameters object.
float read_rope_factor(const JsonFields& rope, std::string_view key, std::string_view rope_type_name) {
  const std::optional<float> value = rope.get_float(key);
  if (!value) rope.fail_key(key, fmt::format("is required for rope type \"{}\"", rope_type_name));
  return require_positive(rope, key, *value);
}

// Qwen2/Qwen3 slide only with use_sliding_window, and then only on the layers that layer_types (or,
// by default, index >= max_window_layers) marks as sliding.
std::optional<int> read_qwen_sliding_window(const JsonFields& fields, int num_hidden_layers) {
  if (!fields.get_bool("use_sliding_window").value_or(false)) return std::nullopt;
  const std::optional<int> window =
      fields.contains("sliding_window") ? fields.get_int("sliding_window") : std::optional<int>(kDefaultSlidingWindow);
  if (!window) return std::nullopt;
  require_positive(fields, "sliding_window", *window);

  int n_sliding_layers = 0;
  std::string layer_rule;
  if (fields.has_value("layer_types")) {
    const nlohmann::json& layer_types = *fields.object().find("layer_types");
    if (!layer_types.is_array() || layer_types.size() != size_t(num_hidden_layers)) {
      fields.fail_key("layer_types", fmt::format("must list one entry per layer ({}), got {}", num_hidden_layers,
                                                 describe_json(layer_types)));
    }
    for (const nlohmann::json& layer_type : layer_types) {
      if (layer_type == "sliding_attention") {
        ++n_sliding_layers;
      } else if (layer_type != "full_attention") {
        fields.fail_key("layer_types", "entries must be \"full_attention\" or \"sliding_attention\", got " +
                                           describe_json(layer_type));
      }
    }
    layer_rule = "layer_types";
  } else {
    const int max_window_layers = fields.get_int("max_window_layers").value_or(kDefaultMaxWindowLayers);
    n_sliding_layers = std::max(0, num_hidden_layers - std::max(0, max_window_layers));
    layer_rule = fmt::format("max_window_layers {}", max_window_layers);
  }
  if (n_sliding_layers == 0) return std::nullopt;
  if (n_sliding_layers != num_hidden_layers) {
    fail("{}: use_sliding_window with {} of {} layers sliding ({}) is not supported; only all or none", fields.source_name(),
         n_sliding_layers, num_hidden_layers, layer_rule);
  }
  return window;
}

std::optional<int> read_sliding_window(const JsonFields& fields, ModelArch arch, int num_hidden_layers) {
  switch (arch) {
    case ModelArch::LLAMA: return std::nullopt;
    case ModelArch::MISTRAL:
    case ModelArch::MIXTRAL: {
      // MistralConfig defaults to a 4096-token window, MixtralConfig to none.
      if (!fields.contains("sliding_window"))
        return arch == ModelArch::MISTRAL ? std::optional<int>(kDefaultSlidingWindow) : std::nullopt;
      const std::optional<int> window = fields.get_int("sliding_window");
      if (window) require_positive(fields, "sliding_window", *window);
      return window;
    }
    case ModelArch::QWEN2:
    case ModelArch::QWEN3:
    case ModelArch::QWEN2_MOE:
    case ModelArch::QWEN3_MOE: return read_qwen_sliding_window(fields, num_hidden_layers);
  }
  return std::nullopt;
}

// Transformers 5 moved RoPE settings (rope_theta included) into "rope_parameters" but still reads
// the old "rope_scaling" first ("rope_scaling or rope_parameters"); theta then comes from that
// object, else from the top-level "rope_theta", else the default.
void read_rope(const JsonFields& fields, ModelConfig& config, float default_theta) {
  std::optional<JsonFields> rope = fields.get_object("rope_scaling");
  if (!rope || rope->object().empty()) rope = fields.get_object("rope_parameters");

  std::optional<float> theta;
  if (rope) theta = rope->get_float("rope_theta");
  if (!theta) theta = fields.get_float("rope_theta");
  config.rope_theta = require_positive(rope && rope->has_value("rope_theta") ? *rope : fields, "rope_theta",
                                       theta.value_or(default_theta));

  // Partial rotary embeddings (rotating only part of each head) are not implemented.
  auto refuse_partial_rotary = [](const JsonFields& holder) {
    const std::optional<float> partial = holder.get_float("partial_rotary_factor");
    if (partial && *partial != 1.0f) holder.fail_key("partial_rotary_factor", fmt::format("is {}; only 1.0 is supported", *partial));
  };
  refuse_partial_rotary(fields);
  if (!rope) return;
  refuse_partial_rotary(*rope);

  // Per-layer-type RoPE ({"full_attention": {...}, "sliding_attention": {...}}) belongs to other
  // families; reading it as one flat object would silently fall back to default RoPE.
  for (const char* layer_type : {"full_attention", "sliding_attention"}) {
    if (rope->object().contains(layer_type)) {
      rope->fail_key(layer_type, "holds per-layer-type RoPE parameters, which are not supported");
    }
  }

  std::optional<std::string> type_name = rope->get_string("rope_type");
  if (!type_name) type_name = rope->get_string("type");
  const std::string rope_type_name = type_name.value_or("default");
  RopeScaling& scaling = config.rope_scaling;
  if (rope_type_name == "default") {
    scaling.type = RopeType::DEFAULT;
  } else if (rope_type_name == "linear") {
    scaling.type = RopeType::LINEAR;
  } else if (rope_type_name == "llama3") {
    scaling.type = RopeType::LLAMA3;
  } else if (rope_type_name == "yarn") {
    scaling.type = RopeType::YARN;
  } else {
    fail("{}: unsupported rope type \"{}\", supported: default, linear, llama3, yarn", fields.source_name(), rope_type_name);
  }
  if (scaling.type == RopeType::DEFAULT) return;

  scaling.factor = read_rope_factor(*rope, "factor", rope_type_name);
  if (scaling.type == RopeType::LINEAR) return;

  // A top-level original_max_position_embeddings wins over the one inside the RoPE object (HF's
  // Phi-3 rule, applied to every config), and the context length is the fallback.
  const JsonFields& original_holder = fields.has_value("original_max_position_embeddings") ? fields : *rope;
  const std::optional<int> original = original_holder.get_int("original_max_position_embeddings");
  scaling.original_max_position_embeddings =
      original ? require_positive(original_holder, "original_max_position_embeddings", *original) : config.max_position_embeddings;

  if (scaling.type == RopeType::LLAMA3) {
    scaling.low_freq_factor = read_rope_factor(*rope, "low_freq_factor", rope_type_name);
    scaling.high_freq_factor = read_rope_factor(*rope, "high_freq_factor", rope_type_name);
    return;
  }
  // yarn: HF reads beta_fast/beta_slow as `value or default`, so 0 also means the default.
  const float beta_fast = rope->get_float("beta_fast").value_or(0.0f);
  const float beta_slow = rope->get_float("beta_slow").value_or(0.0f);
  scaling.beta_fast = beta_fast != 0.0f ? beta_fast : 32.0f;
  scaling.beta_slow = beta_slow != 0.0f ? beta_slow : 1.0f;
  scaling.attention_factor = rope->get_float("attention_factor");
  scaling.mscale = rope->get_float("mscale");
  scaling.mscale_all_dim = rope->get_float("mscale_all_dim");
  scaling.truncate = rope->get_bool("truncate").value_or(true);
}

// A list of layer indices below num_hidden_layers (absent or null: none).
std::vector<int> read_layer_list(const JsonFields& fields, std::string_view key, int num_hidden_layers) {
  if (!fields.has_value(key)) return {};
  const nlohmann::json& list = *fields.object().find(key);
  if (!list.is_array()) fields.fail_key(key, "must be a list of layer indices, got " + describe_json(list));
  std::vector<int> layers;
  for (const nlohmann::json& item : list) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() >= num_hidden_layers)
      fields.fail_key(key, fmt::format("must hold layer indices below num_hidden_layers ({}), got {}", num_hidden_layers,
                                       describe_json(item)));
    layers.push_back(item.get<int>());
  }
  return layers;
}

// The MoE keys of Mixtral and the Qwen MoE families, under either spelling Transformers writes.
MoeConfig read_moe(const JsonFields& fields, ModelArch arch, int intermediate_size, int num_hidden_layers) {
  MoeConfig moe;
  const std::string_view experts_key = fields.has_value("num_local_experts") ? "num_local_experts" : "num_experts";
  const std::optional<int> experts = fields.get_int(experts_key);
  if (!experts) fail("{}: missing required key \"{}\" for {}", fields.source_name(),
                     arch == ModelArch::MIXTRAL ? "num_local_experts" : "num_experts",
                     arch == ModelArch::MIXTRAL ? "MixtralForCausalLM" : "a Qwen MoE model");
  moe.num_experts = require_positive(fields, experts_key, *experts);
  const int default_top_k = arch == ModelArch::MIXTRAL ? 2 : arch == ModelArch::QWEN2_MOE ? 4 : 8;
  moe.num_experts_per_tok =
      require_positive(fields, "num_experts_per_tok", fields.get_int("num_experts_per_tok").value_or(default_top_k));
  if (moe.num_experts_per_tok > moe.num_experts)
    fields.fail_key("num_experts_per_tok", fmt::format("is {}, more than the {} experts", moe.num_experts_per_tok,
                                                       moe.num_experts));
  if (arch == ModelArch::MIXTRAL) {
    moe.expert_intermediate_size = intermediate_size;
    moe.norm_topk_prob = true;  // MixtralSparseMoeBlock always renormalises
    return moe;
  }
  const std::optional<int> expert_size = fields.get_int("moe_intermediate_size");
  if (!expert_size) fail("{}: missing required key \"moe_intermediate_size\"", fields.source_name());
  moe.expert_intermediate_size = require_positive(fields, "moe_intermediate_size", *expert_size);
  if (arch == ModelArch::QWEN2_MOE) {
    const std::optional<int> shared = fields.get_int("shared_expert_intermediate_size");
    if (!shared) fail("{}: missing required key \"shared_expert_intermediate_size\"", fields.source_name());
    moe.shared_expert_intermediate_size = require_positive(fields, "shared_expert_intermediate_size", *shared);
  }
  moe.norm_topk_prob = fields.get_bool("norm_topk_prob").value_or(false);
  moe.decoder_sparse_step =
      require_positive(fields, "decoder_sparse_step", fields.get_int("decoder_sparse_step").value_or(1));
  moe.mlp_only_layers = read_layer_list(fields, "mlp_only_layers", num_hidden_layers);
  return moe;
}

void check_token_id_in_vocabulary(const JsonFields& fields, std::string_view key, int id, int vocab_size) {
  if (id >= vocab_size)
    fields.fail_key(key, fmt::format("is {}, outside the vocabulary (vocab_size {})", id, vocab_size));
}

}  // namespace

ModelConfig ModelConfig::parse(std::string_view json_text, const std::string& source_name) {
  const nlohmann::json root = parse_json_object(json_text, source_name, "config");
  const JsonFields fields(root, source_name);
  const ArchDefaults& defaults = read_architecture(fields);

  ModelConfig config;
  config.arch = defaults.arch;
  config.architecture_name = std::string(defaults.architecture_name);

  // The shape-defining sizes are required: HF's fallbacks describe one particular 7B model, and
  // loading a checkpoint with a guessed shape would only fail later and less clearly.
  config.hidden_size = read_required_size(fields, "hidden_size");
  config.intermediate_size = read_required_size(fields, "intermediate_size");
  config.num_hidden_layers = read_required_size(fields, "num_hidden_layers");
  config.num_attention_heads = read_required_size(fields, "num_attention_heads");
  config.vocab_size = read_required_size(fields, "vocab_size");
  config.num_key_value_heads = read_num_key_value_heads(fields, defaults, config.num_attention_heads);
  config.head_dim = read_head_dim(fields, defaults, config.hidden_size, config.num_attention_heads);
  config.max_position_embeddings = require_positive(
      fields, "max_position_embeddings", fields.get_int("max_position_embeddings").value_or(defaults.max_position_embeddings));

  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source_name, config.num_attention_heads,
         config.num_key_value_heads);
  }
  // RoPE rotates pairs of head dimensions.
  if (config.head_dim % 2 != 0) fail("{}: head_dim {} must be even for rotary embeddings", source_name, config.head_dim);

  config.rms_norm_eps = require_positive(fields, "rms_norm_eps", fields.get_float("rms_norm_eps").value_or(defaults.rms_norm_eps));
  read_rope(fields, config, defaults.rope_theta);

  config.hidden_act = fields.get_string("hidden_act").value_or("silu");
  if (config.hidden_act != "silu") {
    fail("{}: hidden_act \"{}\" is not supported, supported: silu", source_name, config.hidden_act);
  }

  config.tie_word_embeddings = fields.get_bool("tie_word_embeddings").value_or(false);
  switch (config.arch) {
    case ModelArch::LLAMA:
      config.attention_bias = config.attention_output_bias = fields.get_bool("attention_bias").value_or(false);
      config.mlp_bias = fields.get_bool("mlp_bias").value_or(false);
      break;
    case ModelArch::MISTRAL:
    case ModelArch::MIXTRAL:
      break;  // Their attention, MLP and experts are built with bias=False whatever the config says.
    case ModelArch::QWEN2:
      config.attention_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without.
      break;
    case ModelArch::QWEN2_MOE:
      config.attention_bias = fields.get_bool("qkv_bias").value_or(true);  // o_proj never has one
      break;
    case ModelArch::QWEN3:
    case ModelArch::QWEN3_MOE:
      config.attention_bias = config.attention_output_bias = fields.get_bool("attention_bias").value_or(false);
      config.qk_norm = true;
      break;
  }
  if (config.arch == ModelArch::MIXTRAL || config.arch == ModelArch::QWEN2_MOE || config.arch == ModelArch::QWEN3_MOE)
    config.moe = read_moe(fields, config.arch, config.intermediate_size, config.num_hidden_layers);
  config.sliding_window = read_sliding_window(fields, config.arch, config.num_hidden_layers);

  config.bos_token_id = fields.contains("bos_token_id") ? fields.get_token_id("bos_token_id") : defaults.bos_token_id;
  if (fields.contains("eos_token_id")) {
    config.eos_token_ids = fields.get_token_ids("eos_token_id");
  } else if (defaults.eos_token_id) {
    config.eos_token_ids = {*defaults.eos_token_id};
  }
  // An id past the embedding table is never generated (so generation would never stop) or is read
  // out of bounds; Transformers would fail on it later, here it fails naming the key.
  if (fields.has_value("bos_token_id")) check_token_id_in_vocabulary(fields, "bos_token_id", *config.bos_token_id, config.vocab_size);
  for (int id : fields.has_value("eos_token_id") ? config.eos_token_ids : std::vector<int>{})
    check_token_id_in_vocabulary(fields, "eos_token_id", id, config.vocab_size);
  config.torch_dtype = read_torch_dtype(fields);
  return config;
}

bool ModelConfig::is_sparse_layer(int layer) const {
  if (!moe.present()) return false;
  if (std::find(moe.mlp_only_layers.begin(), moe.mlp_only_layers.end(), layer) != moe.mlp_only_layers.end()) return false;
  return (layer + 1) % moe.decoder_sparse_step == 0;
}

ModelConfig ModelConfig::from_dir(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "config.json";
  const MappedFile file = MappedFile::open(path);
  const std::span<const std::byte> bytes = file.bytes();
  return parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path.string());
}

}  // namespace shardlm
