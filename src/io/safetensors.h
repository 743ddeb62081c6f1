// Hugging Face safetensors checkpoints: a hardened parser for one file and a Checkpoint that maps a
// model directory (one file, or shards listed by model.safetensors.index.json). Files are validated
// completely before any tensor is handed out, so model code can trust every TensorInfo: its bytes
// lie inside the mapped file, match dtype x shape, and overlap no other tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/mapped_file.h"

namespace shardlm {

struct TensorInfo {
  std::string name;            // exact Hugging Face name, e.g. "model.layers.7.self_attn.q_proj.weight"
  DType dtype;
  std::vector<int64_t> shape;  // as stored; linear weights are [out_features, in_features]
  // Points into the mapped file; valid while the Checkpoint lives. Only as aligned as the writer
  // made it: HF pads the header to 8 bytes, but the format does not require it, so kernels that
  // need alignment must check or copy.
  const std::byte* data;
  size_t n_bytes;
  std::filesystem::path file;  // which shard holds it
  // The name in the file, when it differs (an expert tensor presented under its canonical name, or
  // a slice of a fused one: io/expert_tensors.h); empty otherwise.
  std::string stored_as;
  int64_t numel() const;
  // The stored name, for messages.
  const std::string& stored_name() const { return stored_as.empty() ? name : stored_as; }
};

// Parses and validates one safetensors byte buffer (8-byte little-endian header length, JSON
// header, data section). source_name is used in messages and stored as TensorInfo::file. Tensors
// come back sorted by name. Besides the type and bounds checks, the data section must be covered
// exactly (no overlaps, gaps or trailing bytes), as the safetensors specification requires.
std::vector<TensorInfo> parse_safetensors(std::span<const std::byte> bytes, const std::string& source_name);

class Checkpoint {
 public:
  // DIR/model.safetensors, or DIR/model.safetensors.index.json ("weight_map": name -> shard file),
  // or a single *.safetensors if exactly one; tried in that order, as Transformers does. Expert
  // tensors of mixture-of-experts models are presented under one naming (io/expert_tensors.h).
  static Checkpoint open(const std::filesystem::path& model_dir);

  const TensorInfo& get(const std::string& name) const;   // throws Error: "<dir>: tensor model.norm.weight not found in checkpoint"
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit Checkpoint(std::filesystem::path dir) : dir_(std::move(dir)) {}
  // Maps one file and adds its tensors; a name already held by another file is an error.
  void add_file(const std::filesystem::path& path);
  void add_shards_from_index(const std::filesystem::path& index_path);
  // The directory's one *.safetensors file when there is neither model.safetensors nor an index.
  std::filesystem::path only_safetensors_file() const;

  std::filesystem::path dir_;
  std::vector<MappedFile> files_;  // owns the memory every TensorInfo::data points into
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace shardlm
