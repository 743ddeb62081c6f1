// Decoder implementations with HF's exact replacement behaviour, which differs between two of them:
// ByteLevel decodes all bytes at once with from_utf8_lossy (one U+FFFD per maximal invalid subpart),
// while ByteFallback turns a run of <0xNN> tokens that is not valid UTF-8 into one U+FFFD per byte.
#include "tokenizer/decoder.h"

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pattern.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace shardlm {
namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      // A token whose characters are all in the byte table contributes those bytes; any other token
      // (an added token such as "<|eot_id|>" spelled outside the table) contributes its own UTF-8.
      const size_t start = bytes.size();
      bool all_mapped = true;
      for (size_t pos = 0; pos < token.size();) {
        const auto byte = byte_level::decode_codepoint(utf8::decode_next(token, pos));
        if (!byte) {
          all_mapped = false;
          break;
        }
        bytes += static_cast<char>(*byte);
      }
      if (!all_mapped) bytes.replace(start, std::string::npos, token);
    }
    tokens.assign(1, utf8::to_valid_lossy(bytes));
  }
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> result;
    std::string pending_bytes;
    const auto flush = [&] {
      if (pending_bytes.empty()) return;
      if (utf8::first_invalid_offset(pending_bytes) == utf8::kInvalidOffset) {
        result.push_back(pending_bytes);
      } else {
        for (size_t i = 0; i < pending_bytes.size(); ++i) result.emplace_back(utf8::kReplacementCharacter);
      }
      pending_bytes.clear();
    };
    for (std::string& token : tokens) {
      if (const int byte = parse_byte_token(token); byte >= 0) {
        pending_bytes += static_cast<char>(byte);
      } else {
        flush();
        result.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(result);
  }

 private:
  // The byte a "<0xNN>" token stands for, or -1.
  static int parse_byte_token(std::string_view token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token[5] != '>') return -1;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int high = hex(token[3]), low = hex(token[4]);
    return high < 0 || low < 0 ? -1 : high * 16 + low;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string fused;
    for (const std::string& token : tokens) fused += token;
    tokens.assign(1, std::move(fused));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string_view rest = token;
      for (size_t i = 0; i < start_ && rest.starts_with(content_); ++i) rest.remove_prefix(content_.size());
      for (size_t i = 0; i < stop_ && rest.ends_with(content_); ++i) rest.remove_suffix(content_.size());
      token = std::string(rest);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string replaced;
      size_t copied_up_to = 0;
      for (const auto& [begin, end] : pattern_.find_all(token)) {
        replaced.append(token, copied_up_to, begin - copied_up_to);
        replaced += content_;
        copied_up_to = end;
      }
      replaced.append(token, copied_up_to);
      token = std::move(replaced);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

// HF's Metaspace decoder turns "▁" into spaces, except that in the first token every "▁" is dropped
// when the pre-tokenizer prepends one (prepend_scheme other than never).
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drops_first_token_replacement)
      : replacement_(std::move(replacement)), drops_first_token_replacement_(drops_first_token_replacement) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string_view substitute = i == 0 && drops_first_token_replacement_ ? "" : " ";
      std::string decoded;
      std::string_view rest = tokens[i];
      for (size_t found; (found = rest.find(replacement_)) != std::string_view::npos;) {
        decoded.append(rest.substr(0, found));
        decoded += substitute;
        rest.remove_prefix(found + replacement_.size());
      }
      decoded.append(rest);
      tokens[i] = std::move(decoded);
    }
  }

 private:
  std::string replacement_;
  bool drops_first_token_replacement_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

size_t count_field(const nlohmann::json& config, std::string_view key, std::string_view where) {
  const auto& value = json_fields::required(config, key, where);
  if (!value.is_number_integer() || value.get<int64_t>() < 0) fail("{}: \"{}\" must be a non-negative integer", where, key);
  return value.get<size_t>();
}

std::unique_ptr<Decoder> make_metaspace_decoder(const nlohmann::json& config, std::string_view where) {
  std::string replacement = json_fields::required_string(config, "replacement", where);
  if (replacement.empty()) fail("{}: empty replacement", where);
  bool prepends = json_fields::optional_string(config, "prepend_scheme", where).value_or("always") != "never";
  if (!json_fields::bool_or(config, "add_prefix_space", true, where)) prepends = false;
  return std::make_unique<MetaspaceDecoder>(std::move(replacement), prepends);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, std::string_view source) {
  if (config.is_null()) return nullptr;
  const std::string type = json_fields::type_of(config, fmt::format("{}: decoder", source));
  const std::string where = fmt::format("{}: decoder {}", source, type);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = json_fields::required_string(config, "content", where);
    // HF stores a single char here.
    size_t pos = 0;
    if (content.empty() || (utf8::decode_next(content, pos), pos != content.size())) fail("{}: \"content\" must be one character", where);
    return std::make_unique<StripDecoder>(std::move(content), count_field(config, "start", where), count_field(config, "stop", where));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(compile_pattern(json_fields::required(config, "pattern", where), where),
                                            json_fields::required_string(config, "content", where));
  }
  if (type == "Metaspace") return make_metaspace_decoder(config, where);
  if (type == "Sequence") {
    const auto& list = json_fields::required(config, "decoders", where);
    if (!list.is_array()) fail("{}: \"decoders\" must be a list", where);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& step : list) {
      if (step.is_null()) fail("{}: null entry in \"decoders\"", where);
      steps.push_back(make_decoder(step, source));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail("{}: unsupported decoder type \"{}\"", source, type);
}

}  // namespace shardlm
