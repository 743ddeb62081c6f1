#include "random_checkpoint.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "common_options.h"
#include "core/error.h"
#include "io/safetensors_writer.h"
#include "plan/tp_plan.h"

namespace shardlm::cli {
namespace {

// FNV-1a over the name: the same seed from every standard library (std::hash need not be).
uint64_t name_seed(const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return hash;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Element `index` of the tensor seeded `seed`: uniform in [-scale, scale), from 16 bits of a hash
// (four elements share one).
float random_value(uint64_t seed, uint64_t index, float scale) {
  const uint64_t bits = splitmix64(seed ^ (index / 4)) >> (16 * (index % 4));
  return (float(bits & 0xffff) / 32768.0f - 1.0f) * scale;
}

void store(float value, DType dtype, std::byte* out) {
  if (dtype == DType::F32) {
    std::memcpy(out, &value, 4);
  } else {
    const uint16_t half = dtype == DType::BF16 ? f32_to_bf16(value) : f32_to_f16(value);
    std::memcpy(out, &half, 2);
  }
}

TensorToWrite random_tensor(const WeightSpec& spec) {
  const bool norm = spec.name.ends_with("norm.weight");
  const float scale = norm ? 0.0f : spec.shape.size() >= 2 ? 1.0f / std::sqrt(float(spec.shape.back())) : 0.02f;
  const uint64_t seed = name_seed(spec.name);
  const DType dtype = spec.dtype;
  return {spec.name, dtype, spec.shape, [=](size_t offset, std::span<std::byte> out) {
            const size_t element_size = dtype_size(dtype);
            const int64_t first = int64_t(offset / element_size), count = int64_t(out.size() / element_size);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < count; ++i)
              store(norm ? 1.0f : random_value(seed, uint64_t(first + i), scale), dtype, out.data() + i * int64_t(element_size));
          }};
}

}  // namespace

void save_random_checkpoint(const std::string& shape, const std::filesystem::path& dir) {
  const ModelConfig config = random_shape_config(shape);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("--save {}: cannot create the directory: {}", dir.string(), error.message());
  std::filesystem::remove(dir / "config.json", error);  // until the weights are whole again
  std::vector<TensorToWrite> tensors;
  for (const WeightSpec& spec : weight_specs(config, config.torch_dtype.value_or(DType::BF16)))
    tensors.push_back(random_tensor(spec));
  write_safetensors(dir / "model.safetensors", tensors);
  // The config last: a directory that has one holds the whole checkpoint.
  std::filesystem::copy_file(random_shape_file(shape), dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing, error);
  if (error) fail("--save {}: cannot write config.json: {}", dir.string(), error.message());
}

}  // namespace shardlm::cli
