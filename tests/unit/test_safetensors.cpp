// Tests for the safetensors parser and Checkpoint: small files are written into a temporary
// directory by a tiny writer below, loaded back, and every malformed variant must fail with a
// shardlm::Error that names the file and the specific problem.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error_message.h"
#include "core/dtype.h"
#include "core/error.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

// ---------------------------------------------------------------------------------------------
// Writer helpers

struct TestTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  Bytes data;
};

template <typename T>
Bytes to_bytes(const std::vector<T>& values) {
  Bytes bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

Bytes f32_bytes(const std::vector<float>& values) { return to_bytes(values); }

Bytes bf16_bytes(const std::vector<float>& values) {
  std::vector<uint16_t> bits;
  for (float value : values) bits.push_back(f32_to_bf16(value));
  return to_bytes(bits);
}

Bytes f16_bytes(const std::vector<float>& values) {
  std::vector<uint16_t> bits;
  for (float value : values) bits.push_back(f32_to_f16(value));
  return to_bytes(bits);
}

// The file layout itself: little-endian header length, header text, data section.
Bytes raw_safetensors(std::string_view header, const Bytes& data) {
  Bytes bytes(8);
  uint64_t length = header.size();
  for (size_t i = 0; i < 8; ++i) bytes[i] = std::byte((length >> (8 * i)) & 0xff);
  for (char c : header) bytes.push_back(std::byte(c));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

// A well-formed file: tensors packed in order, header padded with spaces to 8 bytes as the
// Python writer does.
Bytes build_safetensors(const std::vector<TestTensor>& tensors, const nlohmann::json& metadata = nullptr) {
  nlohmann::json header = nlohmann::json::object();
  Bytes data;
  for (const TestTensor& tensor : tensors) {
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", {data.size(), data.size() + tensor.data.size()}}};
    data.insert(data.end(), tensor.data.begin(), tensor.data.end());
  }
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  std::string header_text = header.dump();
  header_text.resize((header_text.size() + 7) / 8 * 8, ' ');
  return raw_safetensors(header_text, data);
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Every needle must appear in the message.
void expect_contains(const std::string& message, std::initializer_list<std::string_view> needles) {
  for (std::string_view needle : needles) {
    EXPECT_NE(message.find(needle), std::string::npos) << "missing \"" << needle << "\" in: " << message;
  }
}

template <typename T>
T read_element(const TensorInfo& tensor, size_t index) {
  T value;
  std::memcpy(&value, tensor.data + index * sizeof(T), sizeof(T));
  return value;
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "shardlm_safetensors_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// Valid files

std::vector<TestTensor> sample_tensors() {
  return {
      {"model.embed_tokens.weight", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
      {"model.norm.weight", "BF16", {4}, bf16_bytes({0.5f, -1.0f, 2.0f, 3.0f})},
      {"lm_head.bias", "F16", {2}, f16_bytes({0.25f, -8.0f})},
      {"scalar", "F32", {}, f32_bytes({42.0f})},
      {"empty", "F32", {0, 4}, {}},
  };
}

TEST_F(TempDir, SingleFileValuesAreReadable) {
  write_file(dir_ / "model.safetensors", build_safetensors(sample_tensors(), {{"format", "pt"}}));
  const Checkpoint checkpoint = Checkpoint::open(dir_);

  EXPECT_EQ(checkpoint.dir(), dir_);
  ASSERT_EQ(checkpoint.tensors().size(), 5u);

  const TensorInfo& embed = checkpoint.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.name, "model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::F32);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(embed.numel(), 6);
  EXPECT_EQ(embed.n_bytes, 24u);
  EXPECT_EQ(embed.file, dir_ / "model.safetensors");
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(read_element<float>(embed, i), float(i + 1));

  const TensorInfo& norm = checkpoint.get("model.norm.weight");
  EXPECT_EQ(norm.dtype, DType::BF16);
  EXPECT_EQ(bf16_to_f32(read_element<uint16_t>(norm, 1)), -1.0f);
  EXPECT_EQ(bf16_to_f32(read_element<uint16_t>(norm, 3)), 3.0f);

  const TensorInfo& bias = checkpoint.get("lm_head.bias");
  EXPECT_EQ(bias.dtype, DType::F16);
  EXPECT_EQ(f16_to_f32(read_element<uint16_t>(bias, 1)), -8.0f);

  const TensorInfo& scalar = checkpoint.get("scalar");
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(read_element<float>(scalar, 0), 42.0f);

  const TensorInfo& empty = checkpoint.get("empty");
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_EQ(empty.n_bytes, 0u);
}

// The writer's files load back as written: dtypes, shapes, a tensor filled in several pieces (its
// values are their indices, so a piece out of place shows), an empty one; the data section starts
// 8-byte aligned.
TEST_F(TempDir, WrittenFilesLoadBackAsWritten) {
  const int64_t big = (int64_t(64) << 20) / 4 + 3;  // f32 elements: just over one 64 MiB piece
  const auto indices = [](size_t offset, std::span<std::byte> out) {
    for (size_t i = 0; i < out.size() / 4; ++i) {
      const float value = float(offset / 4 + i);
      std::memcpy(out.data() + i * 4, &value, 4);
    }
  };
  const auto halves = [](size_t, std::span<std::byte> out) {
    for (size_t i = 0; i < out.size() / 2; ++i) {
      const uint16_t bits = f32_to_bf16(0.5f);
      std::memcpy(out.data() + i * 2, &bits, 2);
    }
  };
  const std::vector<TensorToWrite> tensors = {{"model.norm.weight", DType::BF16, {3}, halves},
                                              {"big", DType::F32, {big}, indices},
                                              {"empty", DType::F32, {0, 4}, indices}};
  write_safetensors(dir_ / "model.safetensors", tensors);
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  ASSERT_EQ(checkpoint.tensors().size(), 3u);
  const TensorInfo& norm = checkpoint.get("model.norm.weight");
  EXPECT_EQ(norm.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(norm.data) % 8, 0u);
  EXPECT_EQ(bf16_to_f32(read_element<uint16_t>(norm, 2)), 0.5f);
  const TensorInfo& written = checkpoint.get("big");
  for (const int64_t i : {int64_t(0), (int64_t(64) << 20) / 4 - 1, (int64_t(64) << 20) / 4, big - 1})
    EXPECT_EQ(read_element<float>(written, size_t(i)), float(i)) << "element " << i;
  EXPECT_EQ(checkpoint.get("empty").n_bytes, 0u);

  EXPECT_EQ(error_message([&] { write_safetensors(dir_ / "missing" / "model.safetensors", tensors); }),
            (dir_ / "missing" / "model.safetensors").string() + ": cannot write: No such file or directory");
}

TEST(ParseSafetensors, ReturnsTensorsSortedByNameWithSourceAsFile) {
  const Bytes bytes = build_safetensors(sample_tensors());
  const std::vector<TensorInfo> tensors = parse_safetensors(bytes, "buffer");
  ASSERT_EQ(tensors.size(), 5u);
  for (size_t i = 1; i < tensors.size(); ++i) EXPECT_LT(tensors[i - 1].name, tensors[i].name);
  for (const TensorInfo& tensor : tensors) {
    EXPECT_EQ(tensor.file, fs::path("buffer"));
    EXPECT_GE(tensor.data, bytes.data());
    EXPECT_LE(tensor.data + tensor.n_bytes, bytes.data() + bytes.size());
  }
}

TEST(ParseSafetensors, EmptyHeaderObjectIsAnEmptyFile) {
  EXPECT_TRUE(parse_safetensors(raw_safetensors("{}", {}), "empty.safetensors").empty());
}

TEST_F(TempDir, CheckpointStaysValidAfterMove) {
  write_file(dir_ / "model.safetensors", build_safetensors(sample_tensors()));
  Checkpoint original = Checkpoint::open(dir_);
  const std::byte* data = original.get("model.embed_tokens.weight").data;
  const Checkpoint moved = std::move(original);
  const TensorInfo& embed = moved.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.data, data);
  EXPECT_EQ(read_element<float>(embed, 5), 6.0f);
}

TEST_F(TempDir, GetNamesTheDirectoryAndTensorWhenMissing) {
  write_file(dir_ / "model.safetensors", build_safetensors(sample_tensors()));
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  EXPECT_EQ(checkpoint.find("model.layers.0.mlp.up_proj.weight"), nullptr);
  EXPECT_NE(checkpoint.find("scalar"), nullptr);
  EXPECT_EQ(error_message([&] { checkpoint.get("model.layers.0.mlp.up_proj.weight"); }),
            dir_.string() + ": tensor model.layers.0.mlp.up_proj.weight not found in checkpoint");
}

TEST_F(TempDir, LoneSafetensorsFileWithAnotherNameLoads) {
  write_file(dir_ / "consolidated.safetensors", build_safetensors(sample_tensors()));
  write_text(dir_ / "config.json", "{}");
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  EXPECT_EQ(checkpoint.tensors().size(), 5u);
  EXPECT_EQ(checkpoint.get("scalar").file, dir_ / "consolidated.safetensors");
}

TEST_F(TempDir, ModelSafetensorsWinsOverAnIndex) {
  write_file(dir_ / "model.safetensors", build_safetensors(sample_tensors()));
  write_text(dir_ / "model.safetensors.index.json", "not even JSON");
  EXPECT_EQ(Checkpoint::open(dir_).tensors().size(), 5u);
}

// Two shards as save_pretrained writes them; shard 2 also holds a tensor the index omits.
void write_two_shards(const fs::path& dir) {
  write_file(dir / "model-00001-of-00002.safetensors",
             build_safetensors({{"model.embed_tokens.weight", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})},
                                {"model.layers.0.input_layernorm.weight", "BF16", {2}, bf16_bytes({1, 1})}}));
  write_file(dir / "model-00002-of-00002.safetensors",
             build_safetensors({{"model.norm.weight", "F32", {2}, f32_bytes({7, 8})},
                                {"lm_head.weight", "F16", {2, 2}, f16_bytes({1, 2, 3, 4})},
                                {"unlisted.weight", "F32", {1}, f32_bytes({9})}}));
}

const char* kTwoShardIndex = R"({
  "metadata": {"total_size": 40},
  "weight_map": {
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.layers.0.input_layernorm.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors"
  }
})";

TEST_F(TempDir, ShardedCheckpointLoadsEveryShard) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", kTwoShardIndex);
  const Checkpoint checkpoint = Checkpoint::open(dir_);

  EXPECT_EQ(checkpoint.tensors().size(), 5u);
  EXPECT_EQ(checkpoint.get("model.embed_tokens.weight").file, dir_ / "model-00001-of-00002.safetensors");
  EXPECT_EQ(checkpoint.get("model.norm.weight").file, dir_ / "model-00002-of-00002.safetensors");
  EXPECT_EQ(read_element<float>(checkpoint.get("model.embed_tokens.weight"), 3), 4.0f);
  EXPECT_EQ(read_element<float>(checkpoint.get("model.norm.weight"), 1), 8.0f);
  EXPECT_EQ(f16_to_f32(read_element<uint16_t>(checkpoint.get("lm_head.weight"), 2)), 3.0f);
  EXPECT_EQ(read_element<float>(checkpoint.get("unlisted.weight"), 0), 9.0f);
}

TEST(MappedFile, ErrorsNameThePathAndReason) {
  expect_contains(error_message([] { MappedFile::open("/nonexistent/shardlm/model.safetensors"); }),
                  {"/nonexistent/shardlm/model.safetensors", "cannot open", "No such file or directory"});
  expect_contains(error_message([] { MappedFile::open(fs::temp_directory_path()); }), {"not a regular file"});
}

TEST_F(TempDir, MappedFileMapsContentsAndEmptyFiles) {
  write_text(dir_ / "text", "hello");
  write_text(dir_ / "empty", "");
  MappedFile text = MappedFile::open(dir_ / "text");
  ASSERT_EQ(text.bytes().size(), 5u);
  EXPECT_EQ(std::memcmp(text.bytes().data(), "hello", 5), 0);
  EXPECT_EQ(text.path(), dir_ / "text");
  const MappedFile moved = std::move(text);
  EXPECT_EQ(std::memcmp(moved.bytes().data(), "hello", 5), 0);
  EXPECT_TRUE(MappedFile::open(dir_ / "empty").bytes().empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed single files: each is written as DIR/model.safetensors and must fail to open with a
// message naming the file and the problem.

struct BadFileCase {
  const char* test_name;
  Bytes bytes;
  std::vector<std::string> expected;  // substrings of the message besides the file name
};

// Names the case instead of dumping its bytes in test listings.
void PrintTo(const BadFileCase& bad_case, std::ostream* out) { *out << bad_case.test_name; }

Bytes header_only(std::string_view header, size_t data_bytes = 0) { return raw_safetensors(header, Bytes(data_bytes)); }

Bytes with_header_length(uint64_t length, size_t total_bytes) {
  Bytes bytes(total_bytes);
  for (size_t i = 0; i < 8; ++i) bytes[i] = std::byte((length >> (8 * i)) & 0xff);
  return bytes;
}

std::vector<BadFileCase> bad_file_cases() {
  return {
      {"ShorterThanEightBytes", Bytes(5), {"file is 5 bytes, too short for the 8-byte header length"}},
      {"HeaderLengthPastEndOfFile", with_header_length(1000, 20), {"header length 1000 is larger than the 12 bytes that follow it"}},
      {"HeaderLengthAboveLimit", with_header_length(200'000'000, 20), {"header length 200000000 exceeds the limit of 100000000 bytes"}},
      {"HeaderNotJson", header_only(R"({"x": )"), {"header is not valid JSON", "parse error"}},
      {"HeaderTrailingGarbage", header_only(R"({} x)"), {"header is not valid JSON"}},
      {"HeaderNotAnObject", header_only("[1, 2]"), {"header must be a JSON object, got array"}},
      {"DuplicateTensorName",
       header_only(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       {"header has the key \"a\" more than once"}},
      {"EntryNotAnObject", header_only(R"({"x": 3})"), {"tensor \"x\" must be an object with dtype, shape and data_offsets, got integer 3"}},
      {"MissingDtype", header_only(R"({"x": {"shape": [1], "data_offsets": [0, 4]}})", 4), {"tensor \"x\" has no \"dtype\""}},
      {"MissingShape", header_only(R"({"x": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), {"tensor \"x\" has no \"shape\""}},
      {"MissingDataOffsets", header_only(R"({"x": {"dtype": "F32", "shape": [1]}})", 4), {"tensor \"x\" has no \"data_offsets\""}},
      {"DtypeNotString", header_only(R"({"x": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4),
       {"tensor \"x\" \"dtype\" must be a string, got integer 5"}},
      {"ShapeNotArray", header_only(R"({"x": {"dtype": "F32", "shape": "1x4", "data_offsets": [0, 4]}})", 4),
       {"tensor \"x\" \"shape\" must be an array of integers, got string \"1x4\""}},
      {"ShapeElementNotInteger", header_only(R"({"x": {"dtype": "F32", "shape": [2, 1.5], "data_offsets": [0, 12]}})", 12),
       {"\"shape\" must be an array of integers, got element number 1.5"}},
      {"DataOffsetsWrongLength", header_only(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
       {"\"data_offsets\" must be [begin, end] with non-negative integers, got [integer 0]"}},
      {"DataOffsetsNegative", header_only(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}})", 4),
       {"\"data_offsets\" must be [begin, end] with non-negative integers, got [integer 0, integer -4]"}},
      {"DataOffsetsNotArray", header_only(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": "0,4"}})", 4),
       {"\"data_offsets\" must be [begin, end] with non-negative integers, got string \"0,4\""}},
      {"DtypeI8", header_only(R"({"x": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})", 4),
       {"tensor \"x\" has dtype \"I8\", supported: F32, F16, BF16"}},
      {"DtypeU8", header_only(R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 4), {"has dtype \"U8\", supported"}},
      {"DtypeF64", header_only(R"({"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8), {"has dtype \"F64\", supported"}},
      {"DtypeF8", header_only(R"({"x": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4),
       {"has dtype \"F8_E4M3\", supported"}},
      {"DtypeLowercase", header_only(R"({"x": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4),
       {"has dtype \"f32\", supported"}},
      {"NegativeDimension", header_only(R"({"x": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 24]}})", 24),
       {"tensor \"x\" has negative dimension -3 in shape [2, -3]"}},
      {"DimensionAboveInt64", header_only(R"({"x": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", 4),
       {"has dimension 18446744073709551615 in \"shape\", too large"}},
      {"ElementCountOverflow",
       header_only(R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})", 4),
       {"has shape [4294967296, 4294967296] whose element count overflows 64 bits"}},
      {"ByteSizeOverflow", header_only(R"({"x": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", 4),
       {"has shape [4611686018427387904] whose byte size overflows 64 bits"}},
      {"OffsetsBeginAfterEnd", header_only(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8),
       {"has data_offsets [8, 4] with begin > end"}},
      {"RangeOutsideData", header_only(R"({"x": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})", 16),
       {"has data_offsets [0, 64] outside the data section of 16 bytes"}},
      {"HugeOffsetsOutsideData",
       header_only(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551615]}})", 4),
       {"outside the data section of 4 bytes"}},
      {"SizeMismatch", header_only(R"({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
       {"tensor \"x\" has shape [2, 3] and dtype F32 (24 bytes), but data_offsets [0, 20] hold 20 bytes"}},
      {"OverlappingTensors",
       header_only(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                       "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 24),
       {"tensors \"a\" [0, 16) and \"b\" [8, 24) overlap"}},
      {"SameRangeTwice",
       header_only(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}})", 8),
       {"tensors \"a\" [0, 8) and \"b\" [0, 8) overlap"}},
      {"EmptyTensorInsideAnother",
       header_only(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                       "b": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}})", 16),
       {"tensors \"a\" [0, 16) and \"b\" [8, 8) overlap"}},
      {"GapBetweenTensors",
       header_only(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})", 24),
       {"bytes [8, 16) of the data section belong to no tensor"}},
      {"TrailingBytes", header_only(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 12),
       {"bytes [8, 12) of the data section belong to no tensor"}},
      {"MetadataNotObject", header_only(R"({"__metadata__": ["format", "pt"]})"), {"\"__metadata__\" must be an object of strings, got array"}},
      {"MetadataValueNotString", header_only(R"({"__metadata__": {"format": 1}})"),
       {"\"__metadata__\" entry \"format\" must be a string, got integer 1"}},
  };
}

class BadSafetensorsFile : public ::testing::TestWithParam<BadFileCase> {};

TEST_P(BadSafetensorsFile, FailsNamingFileAndProblem) {
  std::string pattern = (fs::temp_directory_path() / "shardlm_bad_safetensors_XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  write_file(dir / "model.safetensors", GetParam().bytes);
  const std::string message = error_message([&] { Checkpoint::open(dir); });
  fs::remove_all(dir);

  EXPECT_EQ(message.rfind((dir / "model.safetensors").string() + ": ", 0), 0u) << message;
  for (const std::string& expected : GetParam().expected) expect_contains(message, {expected});
}

INSTANTIATE_TEST_SUITE_P(Validation, BadSafetensorsFile, ::testing::ValuesIn(bad_file_cases()),
                         [](const ::testing::TestParamInfo<BadFileCase>& info) { return std::string(info.param.test_name); });

// ---------------------------------------------------------------------------------------------
// Directory and shard errors

TEST_F(TempDir, NotADirectory) {
  expect_contains(error_message([&] { Checkpoint::open(dir_ / "missing"); }), {(dir_ / "missing").string(), "not a directory"});
}

TEST_F(TempDir, NoSafetensorsFiles) {
  write_text(dir_ / "config.json", "{}");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {dir_.string(), "no model.safetensors, model.safetensors.index.json or other *.safetensors file"});
}

TEST_F(TempDir, SeveralSafetensorsWithoutIndex) {
  write_two_shards(dir_);
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {dir_.string(), "2 *.safetensors files (model-00001-of-00002.safetensors, model-00002-of-00002.safetensors)",
                   "no model.safetensors.index.json"});
}

TEST_F(TempDir, IndexNotJson) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a": "model-00001-of-00002.safetensors",)");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }), {"model.safetensors.index.json: index is not valid JSON"});
}

TEST_F(TempDir, IndexWithoutWeightMap) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"metadata": {"total_size": 40}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }), {"model.safetensors.index.json: has no \"weight_map\""});
}

TEST_F(TempDir, IndexWeightMapNotAnObject) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": ["model-00001-of-00002.safetensors"]})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model.safetensors.index.json: \"weight_map\" must be an object, got array"});
}

TEST_F(TempDir, IndexWeightMapEmpty) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }), {"model.safetensors.index.json: \"weight_map\" is empty"});
}

TEST_F(TempDir, IndexShardNameNotAString) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {"model.norm.weight": 2}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model.safetensors.index.json: \"weight_map.model.norm.weight\" must name a shard file, got integer 2"});
}

TEST_F(TempDir, IndexShardOutsideTheDirectory) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {"model.norm.weight": "../model-00002-of-00002.safetensors"}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model.safetensors.index.json: \"weight_map.model.norm.weight\" must name a file in the model directory"});
}

TEST_F(TempDir, IndexShardNameWithNul) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json",
             R"({"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors\u0000.bak"}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }), {"must name a file in the model directory"});
}

TEST_F(TempDir, ShardMissing) {
  write_two_shards(dir_);
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  write_text(dir_ / "model.safetensors.index.json", kTwoShardIndex);
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model.safetensors.index.json: shard model-00002-of-00002.safetensors is missing"});
}

TEST_F(TempDir, IndexedTensorAbsentFromItsShard) {
  write_two_shards(dir_);
  // model.norm.weight lives in shard 2, but this index puts it in shard 1.
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00001-of-00002.safetensors",
    "lm_head.weight": "model-00002-of-00002.safetensors"}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model.safetensors.index.json: lists tensor \"model.norm.weight\" in model-00001-of-00002.safetensors, "
                   "but that shard does not contain it"});
}

TEST_F(TempDir, IndexedTensorInNoShard) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.layers.1.input_layernorm.weight": "model-00002-of-00002.safetensors"}})");
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"lists tensor \"model.layers.1.input_layernorm.weight\" in model-00002-of-00002.safetensors, but that shard does not contain it"});
}

TEST_F(TempDir, TensorInTwoShards) {
  write_two_shards(dir_);
  write_file(dir_ / "model-00002-of-00002.safetensors",
             build_safetensors({{"model.norm.weight", "F32", {2}, f32_bytes({7, 8})},
                                {"model.embed_tokens.weight", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})}}));
  write_text(dir_ / "model.safetensors.index.json", kTwoShardIndex);
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {dir_.string(), "tensor \"model.embed_tokens.weight\" is in both model-00001-of-00002.safetensors and "
                                  "model-00002-of-00002.safetensors"});
}

TEST_F(TempDir, BadShardIsNamedInTheError) {
  write_two_shards(dir_);
  write_file(dir_ / "model-00002-of-00002.safetensors",
             header_only(R"({"model.norm.weight": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})", 2));
  write_text(dir_ / "model.safetensors.index.json", kTwoShardIndex);
  expect_contains(error_message([&] { Checkpoint::open(dir_); }),
                  {"model-00002-of-00002.safetensors: tensor \"model.norm.weight\" has dtype \"I8\", supported: F32, F16, BF16"});
}

}  // namespace
}  // namespace shardlm
