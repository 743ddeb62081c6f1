#include "chat/jinja/lexer.h"

#include "chat/jinja/text.h"
#include "core/error.h"
#include "tokenizer/utf8.h"

namespace shardlm::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_word(char c) { return is_word_start(c) || is_digit(c); }

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(source) {
    // Jinja's default keep_trailing_newline=False.
    if (!source_.empty() && source_.back() == '\n') source_.remove_suffix(1);
  }

  std::vector<Token> run() {
    while (position_ < source_.size()) {
      if (starts_with("{#")) {
        comment();
      } else if (starts_with("{%") || starts_with("{{")) {
        tag();
      } else {
        text();
      }
    }
    tokens_.push_back(Token{TokenKind::End, "", line_, column_});
    return std::move(tokens_);
  }

 private:
  bool starts_with(std::string_view prefix) const { return source_.substr(position_).starts_with(prefix); }
  char peek(size_t ahead = 0) const {
    return position_ + ahead < source_.size() ? source_[position_ + ahead] : '\0';
  }
  void advance(size_t count = 1) {
    for (size_t i = 0; i < count && position_ < source_.size(); ++i) {
      if (source_[position_] == '\n') {
        ++line_;
        column_ = 1;
      } else {
        ++column_;
      }
      ++position_;
    }
  }
  [[noreturn]] void error(const std::string& what, int line, int column) const {
    fail("chat template: line {} column {}: {}", line, column, what);
  }

  void text() {
    text_start_ = position_;
    Token token{TokenKind::Text, "", line_, column_};
    while (position_ < source_.size() && !(starts_with("{%") || starts_with("{{") || starts_with("{#"))) {
      // @huggingface/jinja applies trim_blocks to the raw source, so "%}", "#}" or "-}" in plain
      // text drops the newline after it too.
      const bool trimmed = source_[position_] == '\n' && position_ >= 2 && source_[position_ - 1] == '}' &&
                           (source_[position_ - 2] == '%' || source_[position_ - 2] == '#' || source_[position_ - 2] == '-');
      if (!trimmed) token.text += source_[position_];
      advance();
    }
    tokens_.push_back(std::move(token));
  }

  // Before `{%` or `{#`: lstrip_blocks drops the spaces and tabs between the line's start and the
  // tag, when nothing else stands there. Before any tag, `-` drops all whitespace.
  void strip_before_tag(bool block_tag, bool hyphen) {
    if (tokens_.empty() || tokens_.back().kind != TokenKind::Text) return;
    std::string& text = tokens_.back().text;
    if (hyphen) {
      text.resize(text::trailing_whitespace_start(text));
    } else if (block_tag) {
      size_t cut = text.size();
      while (cut > 0 && (text[cut - 1] == ' ' || text[cut - 1] == '\t')) --cut;
      // A line starts after a newline, even one trim_blocks took from the end of the tag before.
      const auto newline = [](char c) { return c == '\n' || c == '\r'; };
      const bool line_start = cut > 0 ? newline(text[cut - 1]) : text_start_ == 0 || newline(source_[text_start_ - 1]);
      if (line_start) text.resize(cut);
    }
  }

  // After `%}` or `#}`: trim_blocks drops one newline; after a `-` delimiter, all whitespace goes.
  void strip_after_tag(bool block_tag, bool hyphen) {
    if (hyphen) {
      while (position_ < source_.size()) {
        size_t next = position_;
        if (!text::is_js_whitespace(utf8::decode_next(source_, next))) break;
        advance(next - position_);
      }
    } else if (block_tag && peek() == '\n') {
      advance();
    }
  }

  void comment() {
    const int line = line_, column = column_;
    advance(2);
    const bool hyphen_before = peek() == '-';
    strip_before_tag(true, hyphen_before);
    const size_t end = source_.find("#}", position_);
    if (end == std::string_view::npos) error("the comment is never closed with #}", line, column);
    const bool hyphen_after = end > position_ && source_[end - 1] == '-';
    advance(end + 2 - position_);
    strip_after_tag(true, hyphen_after);
  }

  void tag() {
    const bool statement = starts_with("{%");
    const int line = line_, column = column_;
    advance(2);
    const bool hyphen_before = peek() == '-';
    if (hyphen_before) advance();
    strip_before_tag(statement, hyphen_before);
    tokens_.push_back(Token{statement ? TokenKind::OpenStatement : TokenKind::OpenExpression, "", line, column});
    const std::string_view close = statement ? "%}" : "}}";
    int open_braces = 0;
    while (true) {
      while (is_space(peek())) advance();
      if (position_ >= source_.size())
        error(statement ? "the tag is never closed with %}" : "the expression is never closed with }}", line, column);
      const bool hyphen_after = peek() == '-' && source_.substr(position_ + 1).starts_with(close);
      if (open_braces == 0 && (starts_with(close) || hyphen_after)) {
        if (hyphen_after) advance();
        tokens_.push_back(Token{statement ? TokenKind::CloseStatement : TokenKind::CloseExpression, "", line_, column_});
        advance(2);
        strip_after_tag(statement, hyphen_after);
        return;
      }
      if (peek() == '{') ++open_braces;
      if (peek() == '}' && open_braces > 0) --open_braces;
      word_or_literal_or_operator();
    }
  }

  void word_or_literal_or_operator() {
    Token token{TokenKind::Operator, "", line_, column_};
    const char c = peek();
    if (is_word_start(c)) {
      token.kind = TokenKind::Identifier;
      while (is_word(peek())) {
        token.text += peek();
        advance();
      }
    } else if (is_digit(c)) {
      token.kind = TokenKind::Integer;
      while (is_digit(peek())) {
        token.text += peek();
        advance();
      }
      if (peek() == '.' && is_digit(peek(1))) {
        token.kind = TokenKind::Float;
        token.text += '.';
        advance();
        while (is_digit(peek())) {
          token.text += peek();
          advance();
        }
      }
    } else if (c == '\'' || c == '"') {
      token.kind = TokenKind::String;
      token.text = string_literal(c);
    } else {
      static constexpr std::string_view kTwoCharacter[] = {"//", "**", "==", "!=", "<=", ">="};
      for (std::string_view op : kTwoCharacter)
        if (starts_with(op)) token.text = op;
      if (token.text.empty()) {
        if (std::string_view("+-*/%~=<>|.,:()[]{}").find(c) == std::string_view::npos)
          error(std::string("unexpected character '") + c + "' in a tag", line_, column_);
        token.text = std::string(1, c);
      }
      advance(token.text.size());
    }
    tokens_.push_back(std::move(token));
  }

  std::string string_literal(char quote) {
    const int line = line_, column = column_;
    advance();
    std::string value;
    while (true) {
      if (position_ >= source_.size()) error("the string is never closed", line, column);
      const char c = peek();
      advance();
      if (c == quote) return value;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (position_ >= source_.size()) error("the string is never closed", line, column);
      const char escaped = peek();
      advance();
      switch (escaped) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\\': value += '\\'; break;
        case 'x': append_hex_escape(value, 2, line, column); break;
        case 'u': append_hex_escape(value, 4, line, column); break;
        case 'U': append_hex_escape(value, 8, line, column); break;
        default: error(std::string("unknown escape \\") + escaped + " in a string", line_, column_ - 2);
      }
    }
  }

  // \xHH, \uHHHH, \UHHHHHHHH: a code point written as UTF-8.
  void append_hex_escape(std::string& value, int digits, int line, int column) {
    uint32_t point = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = peek();
      const int digit = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (digit < 0) error("a \\x, \\u or \\U escape needs " + std::to_string(digits) + " hex digits", line, column);
      point = point * 16 + uint32_t(digit);
      advance();
    }
    if (point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) error("the escape is not a Unicode scalar value", line, column);
    utf8::append_codepoint(value, char32_t(point));
  }

  std::string_view source_;
  size_t position_ = 0;
  size_t text_start_ = 0;  // where the last text token starts in the source
  int line_ = 1;
  int column_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace shardlm::jinja
