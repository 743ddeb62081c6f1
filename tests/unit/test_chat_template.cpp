// Where a model's chat template is found (the --chat-template override, chat_template.jinja, then
// tokenizer_config.json's string or named list), what it is rendered with, and errors naming the
// file or option. The rendering itself is checked against @huggingface/jinja in tests/chat.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"
#include "core/error.h"

namespace shardlm::chat {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

class ChatTemplateLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("shardlm_chat_template_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::string render(const ChatTemplate& chat) const {
    const ordered_json messages = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
    return chat.render(messages, nullptr, true, ordered_json::object());
  }
  fs::path dir_;
};

TEST_F(ChatTemplateLoad, NoneWhenTheModelHasNone) {
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_FALSE(ChatTemplate::load(dir_, "").has_value());
}

TEST_F(ChatTemplateLoad, StringInTokenizerConfigWithItsSpecialTokens) {
  write("tokenizer_config.json",
        R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ add_generation_prompt }}{{ tools is none }}"})");
  const auto chat = ChatTemplate::load(dir_, "");
  ASSERT_TRUE(chat.has_value());
  EXPECT_EQ(render(*chat), "<s>hi</s>truetrue");
  EXPECT_NE(chat->origin().find("tokenizer_config.json"), std::string::npos);
}

TEST_F(ChatTemplateLoad, NamedListTakesDefault) {
  write("tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ x }}"}]})");
  const auto chat = ChatTemplate::load(dir_, "");
  ASSERT_TRUE(chat.has_value());
  const ordered_json messages = ordered_json::array();
  EXPECT_EQ(chat->render(messages, nullptr, false, ordered_json{{"x", 5}}), "D5");
}

TEST_F(ChatTemplateLoad, JinjaFileBesideWinsAndOverrideWinsOverBoth) {
  write("tokenizer_config.json", R"({"chat_template": "config"})");
  write("chat_template.jinja", "file\n");
  EXPECT_EQ(render(*ChatTemplate::load(dir_, "")), "file");  // the trailing newline goes, as in Jinja
  write("override.jinja", "override");
  EXPECT_EQ(render(*ChatTemplate::load(dir_, (dir_ / "override.jinja").string())), "override");
  EXPECT_EQ(render(*ChatTemplate::load(dir_, "{{ 'inline' }}")), "inline");
}

TEST_F(ChatTemplateLoad, ErrorsNameTheSource) {
  write("tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  try {
    ChatTemplate::load(dir_, "");
    FAIL() << "a template that does not parse must be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokenizer_config.json"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("line 1"), std::string::npos) << error.what();
  }
  try {
    ChatTemplate::load(dir_, (dir_ / "missing.jinja").string());
    FAIL() << "a missing --chat-template file must be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--chat-template"), std::string::npos) << error.what();
  }
  write("tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_THROW(ChatTemplate::load(dir_, ""), Error);
}

TEST(ChatTemplateRender, RaiseExceptionBecomesAnError) {
  const ChatTemplate chat("{{ raise_exception('roles must alternate') }}", "", "", "test");
  try {
    chat.render(ordered_json::array(), nullptr, true, ordered_json::object());
    FAIL() << "raise_exception must throw";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("roles must alternate"), std::string::npos) << error.what();
  }
}

TEST(ChatTemplateRender, TheDefaultModelsTemplate) {
  const auto chat = ChatTemplate::load(fs::path(SHARDLM_SOURCE_DIR) / "models" / "kjv-llama", "");
  ASSERT_TRUE(chat.has_value());
  const ordered_json messages = ordered_json::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": " In the beginning "},
          {"role": "assistant", "content": "God created"}, {"role": "user", "content": "And then?"}])");
  EXPECT_EQ(chat->render(messages, nullptr, true, ordered_json::object()),
            "<|begin_of_text|>System: Be brief.\nUser: In the beginning\nAssistant: God created<|end_of_text|>\n"
            "User: And then?\nAssistant:");
  EXPECT_THROW(chat->render(ordered_json::parse(R"([{"role": "tool", "content": "x"}])"), nullptr, true,
                            ordered_json::object()),
               Error);
}

}  // namespace
}  // namespace shardlm::chat
