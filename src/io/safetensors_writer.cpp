#include "io/safetensors_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace shardlm {
namespace {

// Bytes asked of a tensor's fill at a time: large enough that writing is sequential, small enough
// to keep in memory beside a 30B model's page cache.
constexpr size_t kPieceBytes = size_t(64) << 20;

size_t tensor_bytes(const TensorToWrite& tensor) {
  size_t elements = 1;
  for (const int64_t dim : tensor.shape) elements *= size_t(dim);
  return elements * dtype_size(tensor.dtype);
}

}  // namespace

void write_safetensors(const std::filesystem::path& file, std::span<const TensorToWrite> tensors) {
  // Keys sorted (as Hugging Face's writer lists them): a name lookup is logarithmic, where an
  // insertion-ordered header would make a checkpoint of many thousands of tensors quadratic.
  nlohmann::json header = nlohmann::json::object();
  size_t data_bytes = 0;
  for (const TensorToWrite& tensor : tensors) {
    const size_t bytes = tensor_bytes(tensor);
    header[tensor.name] = {{"dtype", std::string(dtype_name(tensor.dtype))}, {"shape", tensor.shape},
                           {"data_offsets", {data_bytes, data_bytes + bytes}}};
    data_bytes += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot write: {}", file.string(), std::strerror(errno));
  const uint64_t header_size = text.size();
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out.write(text.data(), std::streamsize(text.size()));
  std::vector<std::byte> piece;
  for (const TensorToWrite& tensor : tensors) {
    const size_t bytes = tensor_bytes(tensor);
    for (size_t offset = 0; offset < bytes && out; offset += kPieceBytes) {
      piece.resize(std::min(kPieceBytes, bytes - offset));
      tensor.fill(offset, piece);
      out.write(reinterpret_cast<const char*>(piece.data()), std::streamsize(piece.size()));
    }
  }
  out.flush();
  if (!out) fail("{}: writing {} bytes of tensors failed: {}", file.string(), data_bytes, std::strerror(errno));
}

}  // namespace shardlm
