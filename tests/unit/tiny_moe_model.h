// Test support: tiny random mixture-of-experts checkpoints written here (Mixtral, Qwen2-MoE with its
// shared expert, Qwen3-MoE with a dense layer), in each way experts are stored on disk, and the
// dense models that compute the same function when every expert is the same MLP. A weight's
// values depend only on its canonical name (and seed), so two layouts of one model hold the same
// numbers.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors_writer.h"
#include "scratch_dir.h"

namespace shardlm::test {

enum class ExpertLayout { QWEN_PER_EXPERT, MIXTRAL_PER_EXPERT, FUSED };

struct TinyMoe {
  std::string architecture = "Qwen3MoeForCausalLM";
  int hidden = 32, heads = 4, kv_heads = 2, head_dim = 8, layers = 3, vocab = 96;
  int experts = 8, top_k = 2, expert_ff = 16, dense_ff = 40, shared_ff = 0;
  bool norm_topk_prob = true;
  std::vector<int> mlp_only_layers;
  ExpertLayout layout = ExpertLayout::QWEN_PER_EXPERT;
  bool identical_experts = false;  // every expert of a layer holds expert 0's numbers
  float shared_gate_scale = 1.0f;  // 0: sigmoid(0) = 1/2 for every row
  unsigned seed = 7;

  bool mixtral() const { return architecture == "MixtralForCausalLM"; }
  bool qwen2() const { return architecture == "Qwen2MoeForCausalLM"; }
  bool sparse(int layer) const {
    for (int dense : mlp_only_layers)
      if (dense == layer) return false;
    return true;
  }
};

struct TinyTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Random values for `key`: norms near 1, everything else N(0, std).
inline std::vector<float> tiny_values(const std::string& key, int64_t n, unsigned seed, bool norm, float std) {
  std::seed_seq sequence(key.begin(), key.end());
  std::vector<unsigned> words(1);
  sequence.generate(words.begin(), words.end());
  std::mt19937 rng(words[0] ^ seed);
  std::normal_distribution<float> normal(0.0f, std);
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = norm ? 1.0f + 0.1f * normal(rng) : normal(rng);
  return values;
}

inline void write_tiny_safetensors(const std::filesystem::path& file, const std::vector<TinyTensor>& tensors) {
  std::vector<TensorToWrite> written;
  for (const TinyTensor& tensor : tensors)
    written.push_back({tensor.name, DType::F32, tensor.shape, [&tensor](size_t offset, std::span<std::byte> out) {
                         std::memcpy(out.data(), reinterpret_cast<const std::byte*>(tensor.values.data()) + offset, out.size());
                       }});
  shardlm::write_safetensors(file, written);
}

// The tensors of `model` under canonical names, in the given layout.
inline std::vector<TinyTensor> tiny_moe_tensors(const TinyMoe& m) {
  const int64_t h = m.hidden, q = int64_t(m.heads) * m.head_dim, kv = int64_t(m.kv_heads) * m.head_dim;
  std::vector<TinyTensor> tensors;
  const auto add = [&](const std::string& name, std::vector<int64_t> shape, const std::string& key = "", float std = 0.2f) {
    const int64_t n = element_count(shape);
    tensors.push_back({name, std::move(shape), tiny_values(key.empty() ? name : key, n, m.seed, name.ends_with("norm.weight"), std)});
  };
  add("model.embed_tokens.weight", {m.vocab, h}, "", 0.5f);
  add("model.norm.weight", {h});
  add("lm_head.weight", {m.vocab, h}, "", 0.5f);
  for (int il = 0; il < m.layers; ++il) {
    const std::string p = "model.layers." + std::to_string(il) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    add(p + "self_attn.o_proj.weight", {h, q});
    if (m.qwen2()) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    if (m.architecture == "Qwen3MoeForCausalLM") {
      add(p + "self_attn.q_norm.weight", {m.head_dim});
      add(p + "self_attn.k_norm.weight", {m.head_dim});
    }
    if (!m.sparse(il)) {
      add(p + "mlp.gate_proj.weight", {m.dense_ff, h});
      add(p + "mlp.up_proj.weight", {m.dense_ff, h});
      add(p + "mlp.down_proj.weight", {h, m.dense_ff});
      continue;
    }
    add(p + "mlp.gate.weight", {m.experts, h}, "", 1.0f);
    for (int e = 0; e < m.experts; ++e) {
      const std::string expert = p + "mlp.experts." + std::to_string(e) + ".";
      const std::string key = p + "mlp.experts." + std::to_string(m.identical_experts ? 0 : e) + ".";
      add(expert + "gate_proj.weight", {m.expert_ff, h}, key + "gate_proj");
      add(expert + "up_proj.weight", {m.expert_ff, h}, key + "up_proj");
      add(expert + "down_proj.weight", {h, m.expert_ff}, key + "down_proj");
    }
    if (m.shared_ff > 0) {
      add(p + "mlp.shared_expert.gate_proj.weight", {m.shared_ff, h});
      add(p + "mlp.shared_expert.up_proj.weight", {m.shared_ff, h});
      add(p + "mlp.shared_expert.down_proj.weight", {h, m.shared_ff});
      add(p + "mlp.shared_expert_gate.weight", {1, h});
      for (float& v : tensors.back().values) v *= m.shared_gate_scale;
    }
  }
  return tensors;
}

// Renames or fuses the experts as `layout` stores them.
inline std::vector<TinyTensor> store_experts(const TinyMoe& m, std::vector<TinyTensor> tensors) {
  if (m.layout == ExpertLayout::QWEN_PER_EXPERT) return tensors;
  std::map<std::string, TinyTensor*> by_name;
  for (TinyTensor& t : tensors) by_name[t.name] = &t;
  std::vector<TinyTensor> stored;
  for (TinyTensor& t : tensors) {
    const size_t experts_at = t.name.find(".mlp.experts.");
    if (t.name.find(".mlp.gate.weight") != std::string::npos && m.mixtral()) {
      t.name.replace(t.name.find(".mlp."), 5, ".block_sparse_moe.");
      stored.push_back(t);
      continue;
    }
    if (experts_at == std::string::npos) {
      stored.push_back(t);
      continue;
    }
    const std::string layer = t.name.substr(0, experts_at);  // model.layers.N
    const std::string rest = t.name.substr(experts_at + 13);  // K.gate_proj.weight
    const int expert = std::stoi(rest.substr(0, rest.find('.')));
    const std::string projection = rest.substr(rest.find('.') + 1);
    if (m.layout == ExpertLayout::MIXTRAL_PER_EXPERT) {
      const std::string w = projection == "gate_proj.weight" ? "w1" : projection == "up_proj.weight" ? "w3" : "w2";
      t.name = layer + ".block_sparse_moe.experts." + std::to_string(expert) + "." + w + ".weight";
      stored.push_back(t);
      continue;
    }
    if (expert != 0 || projection == "up_proj.weight") continue;  // fused once per layer, at expert 0's gate and down
    TinyTensor fused;
    const bool gate_up = projection == "gate_proj.weight";
    fused.name = layer + (gate_up ? ".mlp.experts.gate_up_proj" : ".mlp.experts.down_proj");
    fused.shape = {m.experts, gate_up ? 2 * m.expert_ff : m.hidden, gate_up ? m.hidden : m.expert_ff};
    for (int e = 0; e < m.experts; ++e) {
      const std::string prefix = layer + ".mlp.experts." + std::to_string(e) + ".";
      for (const char* part : gate_up ? std::vector<const char*>{"gate_proj.weight", "up_proj.weight"}
                                      : std::vector<const char*>{"down_proj.weight"}) {
        const std::vector<float>& v = by_name.at(prefix + part)->values;
        fused.values.insert(fused.values.end(), v.begin(), v.end());
      }
    }
    stored.push_back(std::move(fused));
  }
  return stored;
}

inline nlohmann::json tiny_moe_config(const TinyMoe& m) {
  nlohmann::json config = {{"architectures", {m.architecture}}, {"hidden_size", m.hidden},
                           {"num_hidden_layers", m.layers}, {"num_attention_heads", m.heads},
                           {"num_key_value_heads", m.kv_heads}, {"head_dim", m.head_dim},
                           {"vocab_size", m.vocab}, {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-6},
                           {"rope_theta", 10000.0}, {"tie_word_embeddings", false}, {"hidden_act", "silu"},
                           {"num_experts_per_tok", m.top_k}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (m.mixtral()) {
    config["num_local_experts"] = m.experts;
    config["intermediate_size"] = m.expert_ff;
    return config;
  }
  config["num_experts"] = m.experts;
  config["intermediate_size"] = m.dense_ff;
  config["moe_intermediate_size"] = m.expert_ff;
  config["norm_topk_prob"] = m.norm_topk_prob;
  config["mlp_only_layers"] = m.mlp_only_layers;
  if (m.qwen2()) config["shared_expert_intermediate_size"] = m.shared_ff;
  return config;
}

inline std::filesystem::path write_tiny_moe(const TinyMoe& m, const std::string& name) {
  const std::filesystem::path dir = scratch_dir(name);
  std::ofstream(dir / "config.json") << tiny_moe_config(m).dump();
  write_tiny_safetensors(dir / "model.safetensors", store_experts(m, tiny_moe_tensors(m)));
  return dir;
}

// A tiny MoE with the vocabulary and tokenizer files of `tokenizer_model` (a model directory), so
// that it runs behind the tokenizer: the command line, the scheduler, the server.
inline std::filesystem::path write_tiny_moe_with_tokenizer(TinyMoe m, const std::string& name,
                                                           const std::filesystem::path& tokenizer_model) {
  m.vocab = nlohmann::json::parse(std::ifstream(tokenizer_model / "config.json"))["vocab_size"];
  const std::filesystem::path dir = write_tiny_moe(m, name);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(tokenizer_model / file, dir / file, std::filesystem::copy_options::overwrite_existing);
  return dir;
}

}  // namespace shardlm::test
