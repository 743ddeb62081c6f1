// Test support for the CLI suites: a scratch copy of a fixture checkpoint that a test may corrupt
// (its config, its safetensors header or data), and a check that a command fails naming what it must.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"

namespace shardlm {

inline const std::filesystem::path kFixture =
    std::filesystem::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

class BrokenModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("shardlm-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::copy(kFixture, dir_, std::filesystem::copy_options::recursive);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void overwrite(const std::string& file, const std::string& content) { std::ofstream(dir_ / file) << content; }

  nlohmann::json read_json(const std::string& file) {
    std::ifstream in(dir_ / file);
    return nlohmann::json::parse(in);
  }

  // Sets one key of a JSON file of the model (config.json, generation_config.json).
  void set_json_key(const std::string& file, const std::string& key, const nlohmann::json& value) {
    nlohmann::json object = std::filesystem::exists(dir_ / file) ? read_json(file) : nlohmann::json::object();
    object[key] = value;
    overwrite(file, object.dump());
  }

  // The safetensors header of model.safetensors and where its data section starts.
  nlohmann::json read_header(uint64_t& data_start) {
    std::ifstream in(dir_ / "model.safetensors", std::ios::binary);
    uint64_t header_size = 0;
    in.read(reinterpret_cast<char*>(&header_size), 8);
    std::string header(header_size, '\0');
    in.read(header.data(), std::streamsize(header_size));
    data_start = 8 + header_size;
    return nlohmann::json::parse(header);
  }

  // Writes `value` over element `index` of an F32 tensor, in place.
  void poke_f32(const std::string& tensor, int64_t index, float value) {
    uint64_t data_start = 0;
    const nlohmann::json header = read_header(data_start);
    ASSERT_EQ(header.at(tensor).at("dtype"), "F32");
    const uint64_t offset = data_start + header.at(tensor).at("data_offsets")[0].get<uint64_t>() + uint64_t(index) * 4;
    std::fstream stream(dir_ / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    stream.seekp(std::streamoff(offset));
    stream.write(reinterpret_cast<const char*>(&value), 4);
  }

  // Appends an F32 tensor of `n` zeros to model.safetensors under `name`.
  void add_f32_tensor(const std::string& name, int64_t n) {
    uint64_t data_start = 0;
    nlohmann::json header = read_header(data_start);
    const uint64_t data_size = std::filesystem::file_size(dir_ / "model.safetensors") - data_start;
    header[name] = {{"dtype", "F32"}, {"shape", {n}}, {"data_offsets", {data_size, data_size + uint64_t(n) * 4}}};
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');  // the data section stays 8-byte aligned
    std::ifstream in(dir_ / "model.safetensors", std::ios::binary);
    in.seekg(std::streamoff(data_start));
    std::stringstream data;
    data << in.rdbuf();
    in.close();
    std::ofstream out(dir_ / "model.safetensors", std::ios::binary | std::ios::trunc);
    const uint64_t header_size = text.size();
    out.write(reinterpret_cast<const char*>(&header_size), 8);
    out << text << data.str() << std::string(size_t(n) * 4, '\0');
  }

  void expect_failure_naming(const std::vector<std::string>& args, const std::vector<std::string>& needles) {
    const CommandResult result = run_cli(args);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    for (const std::string& needle : needles) EXPECT_NE(result.output.find(needle), std::string::npos)
        << "message should name '" << needle << "': " << result.output;
  }

  std::filesystem::path dir_;
};

}  // namespace shardlm
