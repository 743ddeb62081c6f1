// safetensors parsing and model-directory loading. The format is an 8-byte little-endian header
// length N, N bytes of JSON ({name: {dtype, shape, data_offsets}, "__metadata__": {...}}), then the
// data section that data_offsets index into. Everything in the header is untrusted: each number is
// range-checked before it is used to form a pointer, and sizes are multiplied with overflow checks.
#include "io/safetensors.h"

#include "io/expert_tensors.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string_view>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/json_fields.h"

namespace shardlm {

namespace {

// The reference implementation (huggingface/safetensors) refuses headers above 100 MB; real ones
// are well under 1 MB even for 100B-parameter shards.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kHeaderLengthBytes = 8;

struct ByteRange {
  uint64_t begin;
  uint64_t end;
  const std::string* tensor_name;
};

uint64_t read_u64_le(const std::byte* bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value |= uint64_t(bytes[i]) << (8 * i);
  return value;
}

std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string format_shape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

class HeaderEntryParser {
 public:
  HeaderEntryParser(const std::string& name, const nlohmann::json& entry, const std::string& source_name)
      : name_(name), entry_(entry), source_name_(source_name) {}

  DType parse_dtype() const {
    const nlohmann::json& value = field("dtype");
    if (!value.is_string()) fail_entry("\"dtype\" must be a string, got {}", describe_json(value));
    const auto& dtype_text = value.get_ref<const std::string&>();
    DType dtype;
    if (!dtype_from_name(dtype_text, dtype)) {
      fail("{}: tensor \"{}\" has dtype \"{}\", supported: F32, F16, BF16", source_name_, name_, dtype_text);
    }
    return dtype;
  }

  std::vector<int64_t> parse_shape() const {
    const nlohmann::json& value = field("shape");
    if (!value.is_array()) fail_entry("\"shape\" must be an array of integers, got {}", describe_json(value));
    std::vector<int64_t> shape;
    for (const nlohmann::json& dim : value) {
      if (!dim.is_number_integer()) fail_entry("\"shape\" must be an array of integers, got element {}", describe_json(dim));
      if (dim.is_number_unsigned() && dim.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
        fail_entry("has dimension {} in \"shape\", too large for 64-bit sizes", dim.get<uint64_t>());
      }
      shape.push_back(dim.get<int64_t>());
    }
    for (int64_t dim : shape) {
      if (dim < 0) fail("{}: tensor \"{}\" has negative dimension {} in shape {}", source_name_, name_, dim, format_shape(shape));
    }
    return shape;
  }

  ByteRange parse_data_offsets() const {
    const nlohmann::json& value = field("data_offsets");
    const bool is_pair = value.is_array() && value.size() == 2 && value[0].is_number_unsigned() && value[1].is_number_unsigned();
    if (!is_pair) fail_entry("\"data_offsets\" must be [begin, end] with non-negative integers, got {}", describe_pair(value));
    const ByteRange range{value[0].get<uint64_t>(), value[1].get<uint64_t>(), &name_};
    if (range.begin > range.end) fail_entry("has data_offsets [{}, {}] with begin > end", range.begin, range.end);
    return range;
  }

  template <typename... Args>
  [[noreturn]] void fail_entry(fmt::format_string<Args...> format, Args&&... args) const {
    fail("{}: tensor \"{}\" {}", source_name_, name_, fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  const nlohmann::json& field(const char* key) const {
    const auto found = entry_.find(key);
    if (found == entry_.end()) fail_entry("has no \"{}\"", key);
    return *found;
  }

  // data_offsets are short arrays; showing their elements makes the mistake obvious.
  static std::string describe_pair(const nlohmann::json& value) {
    if (!value.is_array()) return describe_json(value);
    std::vector<std::string> items;
    for (const nlohmann::json& item : value) items.push_back(describe_json(item));
    return fmt::format("[{}]", fmt::join(items, ", "));
  }

  const std::string& name_;
  const nlohmann::json& entry_;
  const std::string& source_name_;
};

void check_metadata(const nlohmann::json& metadata, const std::string& source_name) {
  if (!metadata.is_object()) fail("{}: \"__metadata__\" must be an object of strings, got {}", source_name, describe_json(metadata));
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      fail("{}: \"__metadata__\" entry \"{}\" must be a string, got {}", source_name, key, describe_json(value));
    }
  }
}

// The specification asks for a data section indexed entirely, without holes (so a file cannot
// hide a second payload) and without overlaps (so no two tensors alias). Empty tensors occupy
// empty ranges and may sit anywhere a tensor boundary is.
void check_coverage(std::vector<ByteRange> ranges, uint64_t data_size, const std::string& source_name) {
  std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered_until = 0;
  const ByteRange* previous = nullptr;
  for (const ByteRange& range : ranges) {
    if (range.begin < covered_until) {
      fail("{}: tensors \"{}\" [{}, {}) and \"{}\" [{}, {}) overlap", source_name, *previous->tensor_name, previous->begin,
           previous->end, *range.tensor_name, range.begin, range.end);
    }
    if (range.begin > covered_until) {
      fail("{}: bytes [{}, {}) of the data section belong to no tensor", source_name, covered_until, range.begin);
    }
    if (range.end > covered_until || previous == nullptr) {
      covered_until = range.end;
      previous = &range;
    }
  }
  if (covered_until != data_size) {
    fail("{}: bytes [{}, {}) of the data section belong to no tensor", source_name, covered_until, data_size);
  }
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::vector<TensorInfo> parse_safetensors(std::span<const std::byte> bytes, const std::string& source_name) {
  if (bytes.size() < kHeaderLengthBytes) {
    fail("{}: file is {} bytes, too short for the 8-byte header length", source_name, bytes.size());
  }
  const uint64_t header_length = read_u64_le(bytes.data());
  if (header_length > kMaxHeaderBytes) {
    fail("{}: header length {} exceeds the limit of {} bytes", source_name, header_length, kMaxHeaderBytes);
  }
  const uint64_t bytes_after_length = bytes.size() - kHeaderLengthBytes;
  if (header_length > bytes_after_length) {
    fail("{}: header length {} is larger than the {} bytes that follow it", source_name, header_length, bytes_after_length);
  }
  const std::span<const std::byte> header_bytes = bytes.subspan(kHeaderLengthBytes, header_length);
  const std::span<const std::byte> data = bytes.subspan(kHeaderLengthBytes + header_length);
  const nlohmann::json header = parse_json_object(as_text(header_bytes), source_name, "header");

  std::vector<TensorInfo> tensors;
  std::vector<ByteRange> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      check_metadata(entry, source_name);
      continue;
    }
    if (!entry.is_object()) {
      fail("{}: tensor \"{}\" must be an object with dtype, shape and data_offsets, got {}", source_name, name,
           describe_json(entry));
    }
    const HeaderEntryParser parser(name, entry, source_name);
    const DType dtype = parser.parse_dtype();
    std::vector<int64_t> shape = parser.parse_shape();
    const ByteRange range = parser.parse_data_offsets();
    if (range.end > data.size()) {
      parser.fail_entry("has data_offsets [{}, {}] outside the data section of {} bytes", range.begin, range.end, data.size());
    }

    uint64_t numel = 1;
    for (int64_t dim : shape) {
      if (__builtin_mul_overflow(numel, uint64_t(dim), &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max())) {
        parser.fail_entry("has shape {} whose element count overflows 64 bits", format_shape(shape));
      }
    }
    uint64_t expected_bytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(dtype)), &expected_bytes)) {
      parser.fail_entry("has shape {} whose byte size overflows 64 bits", format_shape(shape));
    }
    const uint64_t stored_bytes = range.end - range.begin;
    if (expected_bytes != stored_bytes) {
      parser.fail_entry("has shape {} and dtype {} ({} bytes), but data_offsets [{}, {}] hold {} bytes", format_shape(shape),
                        dtype_name(dtype), expected_bytes, range.begin, range.end, stored_bytes);
    }

    ranges.push_back(range);
    tensors.push_back(TensorInfo{name, dtype, std::move(shape), data.data() + range.begin, size_t(stored_bytes), source_name, {}});
  }
  check_coverage(std::move(ranges), data.size(), source_name);
  return tensors;
}

Checkpoint Checkpoint::open(const std::filesystem::path& model_dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(model_dir, error)) fail("{}: not a directory", model_dir.string());

  Checkpoint checkpoint(model_dir);
  const std::filesystem::path single_file = model_dir / "model.safetensors";
  const std::filesystem::path index_file = model_dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single_file, error)) {
    checkpoint.add_file(single_file);
  } else if (std::filesystem::exists(index_file, error)) {
    checkpoint.add_shards_from_index(index_file);
  } else {
    checkpoint.add_file(checkpoint.only_safetensors_file());
  }
  name_experts_alike(checkpoint.tensors_);
  return checkpoint;
}

std::filesystem::path Checkpoint::only_safetensors_file() const {
  const std::filesystem::path& model_dir = dir_;
  std::error_code error;

  std::vector<std::filesystem::path> candidates;
  for (std::filesystem::directory_iterator entry(model_dir, error), end; !error && entry != end; entry.increment(error)) {
    if (entry->path().extension() == ".safetensors") candidates.push_back(entry->path());
  }
  if (error) fail("{}: cannot list directory: {}", model_dir.string(), error.message());
  if (candidates.empty()) {
    fail("{}: no model.safetensors, model.safetensors.index.json or other *.safetensors file", model_dir.string());
  }
  if (candidates.size() > 1) {
    std::vector<std::string> names;
    for (const auto& candidate : candidates) names.push_back(candidate.filename().string());
    std::sort(names.begin(), names.end());
    fail("{}: {} *.safetensors files ({}) but no model.safetensors.index.json to say which to load", model_dir.string(),
         names.size(), fmt::join(names, ", "));
  }
  return candidates.front();
}

void Checkpoint::add_file(const std::filesystem::path& path) {
  files_.push_back(MappedFile::open(path));
  for (TensorInfo& tensor : parse_safetensors(files_.back().bytes(), path.string())) {
    const auto [existing, inserted] = tensors_.try_emplace(tensor.name, tensor);
    if (!inserted) {
      fail("{}: tensor \"{}\" is in both {} and {}", dir_.string(), tensor.name, existing->second.file.filename().string(),
           path.filename().string());
    }
  }
}

void Checkpoint::add_shards_from_index(const std::filesystem::path& index_path) {
  const std::string source_name = index_path.string();
  const MappedFile index_file = MappedFile::open(index_path);
  const nlohmann::json index = parse_json_object(as_text(index_file.bytes()), source_name, "index");
  const std::optional<JsonFields> weight_map = JsonFields(index, source_name).get_object("weight_map");
  if (!weight_map) fail("{}: has no \"weight_map\"", source_name);
  if (weight_map->object().empty()) fail("{}: \"weight_map\" is empty", source_name);

  std::map<std::string, std::string> shard_of_tensor;
  std::set<std::string> shard_names;
  for (const auto& [tensor_name, shard] : weight_map->object().items()) {
    if (!shard.is_string()) weight_map->fail_key(tensor_name, "must name a shard file, got " + describe_json(shard));
    const auto& shard_name = shard.get_ref<const std::string&>();
    // Shards live next to the index. Refusing separators and NULs keeps a hostile index from
    // pointing outside the model directory or at a name the C library would cut short.
    const bool plain_file_name = !shard_name.empty() && shard_name != "." && shard_name != ".." &&
                                 shard_name.find_first_of(std::string_view("/\0", 2)) == std::string::npos;
    if (!plain_file_name) {
      weight_map->fail_key(tensor_name, "must name a file in the model directory, got " + describe_json(shard));
    }
    shard_of_tensor.emplace(tensor_name, shard_name);
    shard_names.insert(shard_name);
  }

  for (const std::string& shard_name : shard_names) {
    const std::filesystem::path shard_path = dir_ / shard_name;
    std::error_code error;
    if (!std::filesystem::exists(shard_path, error)) fail("{}: shard {} is missing", source_name, shard_name);
    add_file(shard_path);
  }
  // Tensors a shard holds beyond the index are kept (Transformers loads whole shards too); a tensor
  // the index promises but its shard lacks means the index and the shards are out of step.
  for (const auto& [tensor_name, shard_name] : shard_of_tensor) {
    const TensorInfo* tensor = find(tensor_name);
    if (tensor == nullptr || tensor->file.filename() != shard_name) {
      fail("{}: lists tensor \"{}\" in {}, but that shard does not contain it", source_name, tensor_name, shard_name);
    }
  }
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* tensor = find(name);
  if (tensor == nullptr) fail("{}: tensor {} not found in checkpoint", dir_.string(), name);
  return *tensor;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  const auto found = tensors_.find(name);
  return found == tensors_.end() ? nullptr : &found->second;
}

}  // namespace shardlm
