// Differential test: every case of tests/chat/cases.json (a template under tests/fixtures/chat_templates/
// and a context: messages, add_generation_prompt, special tokens, tools...) is rendered by our
// jinja::Template and by @huggingface/jinja, the engine transformers.js uses for chat templates, and the
// two outputs must be the same bytes. The real templates are the models' published chat_template strings
// (Llama 3.1/3.2, Qwen2.5, Qwen3, Mistral v0.3, Gemma 2, SmolLM2); the synthetic ones under features/
// exercise one Jinja feature each, including the places where @huggingface/jinja differs from Python's
// Jinja2 (we copy @huggingface/jinja). Cases marked "expect_error" must throw shardlm::Error, as they make
// @huggingface/jinja throw; one it refuses at parse time must already fail in the Template constructor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chat/jinja/template.h"
#include "core/error.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

constexpr size_t kContextBytes = 60;  // bytes shown either side of the first difference

fs::path cases_file() { return fs::path(SHARDLM_CHAT_ORACLE_DIR) / "cases.json"; }
fs::path template_dir() { return fs::path(SHARDLM_FIXTURES_DIR) / "chat_templates"; }
fs::path package_file() {
  return fs::path(SHARDLM_CHAT_ORACLE_DIR) / "node_modules" / "@huggingface" / "jinja" / "package.json";
}

std::string read_text(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// Runs render_with_huggingface_jinja.mjs over cases.json: {name: {"output"} | {"error", "phase"}}.
json run_oracle() {
  const std::string command = fmt::format("\"{}\" \"{}\" \"{}\" \"{}\"", SHARDLM_NODE_EXECUTABLE,
                                          (fs::path(SHARDLM_CHAT_ORACLE_DIR) / "render_with_huggingface_jinja.mjs").string(),
                                          cases_file().string(), template_dir().string());
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[65536];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) output.append(buffer, n);
  const int status = pclose(pipe.release());
  if (status != 0) throw std::runtime_error(fmt::format("oracle exited with status {}: {}", status, command));
  return json::parse(output);
}

// Moves a byte offset back to the start of the UTF-8 sequence it falls in.
size_t sequence_start(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  while (offset > 0 && offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) --offset;
  return offset;
}

// A byte range (widened to whole UTF-8 sequences) as a JSON string literal; invalid UTF-8 shows as U+FFFD.
std::string quote(const std::string& text, size_t begin, size_t end) {
  begin = sequence_start(text, begin);
  end = sequence_start(text, end);
  return json(text.substr(begin, end - begin)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Where two renderings first differ, with some context from each.
std::string describe_difference(const std::string& expected, const std::string& actual) {
  const auto mismatch = std::mismatch(expected.begin(), expected.end(), actual.begin(), actual.end());
  const size_t offset = static_cast<size_t>(mismatch.first - expected.begin());
  const size_t begin = sequence_start(expected, offset > kContextBytes ? offset - kContextBytes : 0);
  return fmt::format(
      "first difference at byte {} (oracle output {} bytes, ours {} bytes)\n"
      "  oracle [{}..]: {}\n"
      "  ours   [{}..]: {}",
      offset, expected.size(), actual.size(), begin, quote(expected, begin, offset + kContextBytes), begin,
      quote(actual, begin, offset + kContextBytes));
}

TEST(ChatTemplateOracle, NodeAndPackageAreInstalled) {
  ASSERT_NE(std::string(SHARDLM_NODE_EXECUTABLE), "node-not-found") << "node is not installed (apt-get install nodejs npm)";
  ASSERT_TRUE(fs::exists(package_file())) << "oracle package missing: run `npm ci --prefix tests/chat`";
}

// Every template fixture is rendered by at least one case, and every case names an existing template.
TEST(ChatTemplateOracle, EveryTemplateFixtureHasACase) {
  const ordered_json cases = ordered_json::parse(read_text(cases_file()));
  std::set<std::string> used;
  for (const auto& test_case : cases) {
    const std::string name = test_case.at("template").get<std::string>();
    EXPECT_TRUE(fs::is_regular_file(template_dir() / name)) << test_case.at("name") << ": no template " << name;
    used.insert(name);
  }
  for (const auto& entry : fs::recursive_directory_iterator(template_dir())) {
    if (entry.path().extension() != ".jinja") continue;
    const std::string name = fs::relative(entry.path(), template_dir()).generic_string();
    EXPECT_TRUE(used.contains(name)) << name << " is not used by any case in " << cases_file();
  }
}

TEST(ChatTemplateOracle, OutputMatchesHuggingFaceJinja) {
  ASSERT_TRUE(fs::exists(package_file())) << "oracle package missing: run `npm ci --prefix tests/chat`";
  const ordered_json cases = ordered_json::parse(read_text(cases_file()));
  ASSERT_FALSE(cases.empty()) << "no cases in " << cases_file();
  json oracle;
  ASSERT_NO_THROW(oracle = run_oracle());
  ASSERT_EQ(oracle.size(), cases.size()) << "the oracle answered a different number of cases";

  // "3:14", "line 3 column 14", "line 3, column 14"...
  const std::regex line_and_column("[0-9]+:[0-9]+|line [0-9]+,? col(umn)? [0-9]+", std::regex::icase);
  int n_failures = 0;
  for (const auto& test_case : cases) {
    const std::string name = test_case.at("name").get<std::string>();
    const std::string template_name = test_case.at("template").get<std::string>();
    const ordered_json& context = test_case.at("context");
    const bool expect_error = test_case.value("expect_error", false);
    const std::string where = fmt::format("case {} (template {})", name, template_name);
    ASSERT_TRUE(oracle.contains(name)) << where << ": missing from the oracle's answer";
    const json& expected = oracle.at(name);
    const std::string source = read_text(template_dir() / template_name);

    // The oracle must agree with cases.json about which cases fail, or the case itself is wrong.
    if (expected.contains("error") != expect_error) {
      ++n_failures;
      ADD_FAILURE() << where << ": cases.json says expect_error=" << expect_error << " but @huggingface/jinja "
                    << (expected.contains("error") ? "threw: " + expected.at("error").get<std::string>() : "rendered it");
      continue;
    }

    if (expect_error) {
      const bool syntax_error = expected.at("phase") == "parse";
      std::string failure;
      try {
        const jinja::Template parsed(source);
        if (syntax_error) {
          failure = "the constructor accepted a template that @huggingface/jinja refuses to parse";
        } else {
          const std::string output = parsed.render(context);
          failure = "rendered " + quote(output, 0, 2 * kContextBytes) + " instead of throwing";
        }
      } catch (const Error& error) {
        if (syntax_error && !std::regex_search(error.what(), line_and_column)) {
          failure = fmt::format("the syntax error names no line:column: {}", error.what());
        }
      } catch (const std::exception& error) {
        failure = fmt::format("threw a {} that is not shardlm::Error: {}", typeid(error).name(), error.what());
      }
      if (!failure.empty()) {
        ++n_failures;
        ADD_FAILURE() << where << ": " << failure << "\n  (@huggingface/jinja: " << expected.at("error").get<std::string>()
                      << ")";
      }
      continue;
    }

    const std::string expected_output = expected.at("output").get<std::string>();
    std::string output;
    try {
      output = jinja::Template(source).render(context);
    } catch (const std::exception& error) {
      ++n_failures;
      ADD_FAILURE() << where << ": threw, but @huggingface/jinja renders it: " << error.what();
      continue;
    }
    if (output != expected_output) {
      ++n_failures;
      ADD_FAILURE() << where << ": " << describe_difference(expected_output, output);
    }
  }
  EXPECT_EQ(n_failures, 0) << n_failures << " of " << cases.size() << " cases differ from @huggingface/jinja";
}

}  // namespace
}  // namespace shardlm
