// libFuzzer target for the JSON configs that ship with a checkpoint: each input is parsed both as
// config.json and as generation_config.json. Only shardlm::Error may come out; other exceptions and
// sanitizer findings are crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/generation_config.h"
#include "io/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    shardlm::ModelConfig::parse(text, "config.json");
  } catch (const shardlm::Error&) {
  }
  try {
    shardlm::GenerationConfig::parse(text, "generation_config.json");
  } catch (const shardlm::Error&) {
  }
  return 0;
}
