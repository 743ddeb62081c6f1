#include "chat/jinja/parser.h"

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <set>

#include "core/error.h"

namespace shardlm::jinja {
namespace {

// Deeper nesting than any template needs (each precedence level of an expression counts one); a
// bound keeps hostile input off the end of the stack.
constexpr int kMaxDepth = 1024;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  Body run() {
    Body body = parse_body({});
    if (current().kind != TokenKind::End) error("unexpected {% " + peek_keyword() + " %}");
    return body;
  }

 private:
  const Token& current() const { return tokens_[position_]; }
  const Token& ahead(size_t n) const { return tokens_[std::min(position_ + n, tokens_.size() - 1)]; }
  void advance() {
    if (position_ + 1 < tokens_.size()) ++position_;
  }
  bool is_operator(std::string_view op) const {
    return current().kind == TokenKind::Operator && current().text == op;
  }
  bool is_keyword(std::string_view word) const {
    return current().kind == TokenKind::Identifier && current().text == word;
  }
  [[noreturn]] void error(const std::string& what) const {
    fail("chat template: line {} column {}: {}", current().line, current().column, what);
  }
  std::string describe_current() const {
    switch (current().kind) {
      case TokenKind::End: return "the end of the template";
      case TokenKind::CloseStatement: return "%}";
      case TokenKind::CloseExpression: return "}}";
      case TokenKind::Text: return "text";
      case TokenKind::String: return "a string";
      default: return "'" + current().text + "'";
    }
  }
  void expect_operator(std::string_view op) {
    if (!is_operator(op)) error("expected '" + std::string(op) + "', found " + describe_current());
    advance();
  }
  void expect_keyword(std::string_view word) {
    if (!is_keyword(word)) error("expected '" + std::string(word) + "', found " + describe_current());
    advance();
  }
  void expect(TokenKind kind, std::string_view what) {
    if (current().kind != kind) error("expected " + std::string(what) + ", found " + describe_current());
    advance();
  }
  std::string identifier(std::string_view what) {
    if (current().kind != TokenKind::Identifier) error("expected " + std::string(what) + ", found " + describe_current());
    std::string name = current().text;
    advance();
    return name;
  }
  // The keyword of the statement tag at the cursor ("" if the cursor is not at one).
  std::string peek_keyword() const {
    if (current().kind != TokenKind::OpenStatement) return "";
    const Token& next = ahead(1);
    return next.kind == TokenKind::Identifier ? next.text : "";
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& parser) : parser_(parser) { deeper(); }
    // Each link of a chain (a + b + c, x|f|g, a.b.c, elif) nests the tree one level more, though
    // a loop builds it: count it too, as the evaluation and the tree's destruction recurse.
    void deeper() {
      ++links_;
      if (++parser_.depth_ > kMaxDepth) parser_.error("the template nests deeper than " + std::to_string(kMaxDepth));
    }
    ~DepthGuard() { parser_.depth_ -= links_; }
    Parser& parser_;
    int links_ = 0;
  };

  template <typename Node>
  std::unique_ptr<Statement> statement(Node node, const Token& at) {
    auto made = std::make_unique<Statement>();
    made->node = std::move(node);
    made->line = at.line;
    made->column = at.column;
    return made;
  }
  template <typename Node>
  ExpressionPtr expression(Node node, const Token& at) {
    auto made = std::make_unique<Expression>();
    made->node = std::move(node);
    made->line = at.line;
    made->column = at.column;
    return made;
  }

  // Statements until a tag whose keyword is in `stops` (left unconsumed) or the end.
  Body parse_body(std::initializer_list<std::string_view> stops) {
    DepthGuard guard(*this);
    Body body;
    while (current().kind != TokenKind::End) {
      const Token at = current();
      if (at.kind == TokenKind::Text) {
        body.push_back(statement(TextOutput{at.text}, at));
        advance();
      } else if (at.kind == TokenKind::OpenExpression) {
        advance();
        ExpressionPtr value = parse_expression();
        expect(TokenKind::CloseExpression, "}}");
        body.push_back(statement(ExpressionOutput{std::move(value)}, at));
      } else if (at.kind == TokenKind::OpenStatement) {
        const std::string keyword = peek_keyword();
        for (std::string_view stop : stops)
          if (keyword == stop) return body;
        advance();
        parse_statement(body, at);
      } else {
        error("unexpected " + describe_current());
      }
    }
    return body;
  }

  void close_tag() { expect(TokenKind::CloseStatement, "%}"); }

  // Ends a block: `{% keyword %}`.
  void end_tag(std::string_view keyword) {
    expect(TokenKind::OpenStatement, "{% " + std::string(keyword) + " %}");
    expect_keyword(keyword);
    close_tag();
  }

  void parse_statement(Body& body, const Token& at) {
    const std::string keyword = identifier("a statement name");
    if (keyword == "if") {
      body.push_back(statement(parse_if(), at));
    } else if (keyword == "for") {
      body.push_back(statement(parse_for(), at));
    } else if (keyword == "set") {
      body.push_back(statement(parse_set(), at));
    } else if (keyword == "macro") {
      body.push_back(statement(parse_macro(), at));
    } else if (keyword == "call") {
      body.push_back(statement(parse_call_block(), at));
    } else if (keyword == "filter") {
      body.push_back(statement(parse_filter_block(), at));
    } else if (keyword == "break" || keyword == "continue") {
      close_tag();
      if (loop_depth_ == 0) fail("chat template: line {} column {}: {} outside a loop", at.line, at.column, keyword);
      if (keyword == "break")
        body.push_back(statement(Break{}, at));
      else
        body.push_back(statement(Continue{}, at));
    } else if (keyword == "generation") {
      // Transformers' marker of assistant text for training masks: it renders its body unchanged.
      close_tag();
      Body inner = parse_body({"endgeneration"});
      end_tag("endgeneration");
      for (auto& each : inner) body.push_back(std::move(each));
    } else {
      fail("chat template: line {} column {}: unknown statement '{}'", at.line, at.column, keyword);
    }
  }

  If parse_if() {
    DepthGuard guard(*this);  // an elif is an If inside the last one
    If node;
    node.condition = parse_expression();
    close_tag();
    node.then = parse_body({"elif", "else", "endif"});
    const Token at = current();
    const std::string keyword = peek_keyword();
    if (keyword == "elif") {
      advance();
      advance();
      node.otherwise.push_back(statement(parse_if(), at));
      return node;  // the nested If consumed the endif
    }
    if (keyword == "else") {
      advance();
      advance();
      close_tag();
      node.otherwise = parse_body({"endif"});
    }
    end_tag("endif");
    return node;
  }

  For parse_for() {
    For node;
    node.targets.push_back(identifier("a loop variable"));
    while (is_operator(",")) {
      advance();
      node.targets.push_back(identifier("a loop variable"));
    }
    expect_keyword("in");
    // Not a full expression: `if` here filters the loop rather than starting `x if c else y`.
    node.iterable = parse_or();
    if (is_keyword("if")) {
      advance();
      node.condition = parse_expression();
    }
    close_tag();
    ++loop_depth_;
    node.body = parse_body({"else", "endfor"});
    --loop_depth_;
    if (peek_keyword() == "else") {
      advance();
      advance();
      close_tag();
      node.otherwise = parse_body({"endfor"});
    }
    end_tag("endfor");
    return node;
  }

  Set parse_set() {
    Set node;
    const Token at = current();
    std::string name = identifier("a variable name");
    if (is_operator(".")) {
      advance();
      node.target = expression(Attribute{expression(Name{name}, at), identifier("an attribute name")}, at);
    } else if (is_operator(",")) {
      ListLiteral names;
      names.items.push_back(expression(Name{name}, at));
      while (is_operator(",")) {
        advance();
        const Token item = current();
        names.items.push_back(expression(Name{identifier("a variable name")}, item));
      }
      node.target = expression(std::move(names), at);
    } else {
      node.target = expression(Name{name}, at);
    }
    if (is_operator("=")) {
      advance();
      node.value = parse_expression();
      if (is_operator(",")) {  // `set a, b = 1, 2`: a tuple without parentheses
        ListLiteral tuple;
        tuple.items.push_back(std::move(node.value));
        while (is_operator(",")) {
          advance();
          tuple.items.push_back(parse_expression());
        }
        node.value = expression(std::move(tuple), at);
      }
      close_tag();
      return node;
    }
    close_tag();
    node.body = parse_body({"endset"});
    end_tag("endset");
    return node;
  }

  std::vector<std::pair<std::string, ExpressionPtr>> parse_parameters() {
    std::vector<std::pair<std::string, ExpressionPtr>> parameters;
    expect_operator("(");
    while (!is_operator(")")) {
      std::string name = identifier("a parameter name");
      ExpressionPtr fallback;
      if (is_operator("=")) {
        advance();
        fallback = parse_expression();
      }
      parameters.emplace_back(std::move(name), std::move(fallback));
      if (!is_operator(",")) break;
      advance();
    }
    expect_operator(")");
    return parameters;
  }

  Macro parse_macro() {
    Macro node;
    node.name = identifier("a macro name");
    node.parameters = parse_parameters();
    close_tag();
    node.body = parse_body({"endmacro"});
    end_tag("endmacro");
    return node;
  }

  CallBlock parse_call_block() {
    CallBlock node;
    node.call = parse_expression();
    if (!std::holds_alternative<Call>(node.call->node)) error("{% call %} needs a macro call");
    close_tag();
    node.body = parse_body({"endcall"});
    end_tag("endcall");
    return node;
  }

  FilterBlock parse_filter_block() {
    FilterBlock node;
    node.name = identifier("a filter name");
    if (is_operator("(")) node.arguments = parse_arguments();
    close_tag();
    node.body = parse_body({"endfilter"});
    end_tag("endfilter");
    return node;
  }

  // Expressions, loosest first.
  ExpressionPtr parse_expression() {
    DepthGuard guard(*this);
    const Token at = current();
    ExpressionPtr then = parse_or();
    if (!is_keyword("if")) return then;
    advance();
    Conditional node;
    node.then = std::move(then);
    node.condition = parse_or();
    if (is_keyword("else")) {
      advance();
      node.otherwise = parse_expression();
    }
    return expression(std::move(node), at);
  }

  // A left-associative chain of binary operators of one precedence level: operands from `operand`,
  // each operator a token for which `is_operator_here` holds (its text names the operation).
  template <typename Operand, typename IsOperator>
  ExpressionPtr binary_chain(Operand operand, IsOperator is_operator_here) {
    DepthGuard guard(*this);
    ExpressionPtr left = (this->*operand)();
    while (is_operator_here()) {
      guard.deeper();
      const Token at = current();
      advance();
      left = expression(Binary{at.text, std::move(left), (this->*operand)()}, at);
    }
    return left;
  }

  ExpressionPtr parse_or() {
    return binary_chain(&Parser::parse_and, [this] { return is_keyword("or"); });
  }

  ExpressionPtr parse_and() {
    return binary_chain(&Parser::parse_not, [this] { return is_keyword("and"); });
  }

  ExpressionPtr parse_not() {
    if (!is_keyword("not")) return parse_comparison();
    DepthGuard guard(*this);
    const Token at = current();
    advance();
    return expression(Unary{"not", parse_not()}, at);
  }

  ExpressionPtr parse_comparison() {
    ExpressionPtr left = parse_additive();
    static const std::set<std::string, std::less<>> kComparisons = {"==", "!=", "<", ">", "<=", ">="};
    DepthGuard guard(*this);
    while (true) {
      guard.deeper();
      const Token at = current();
      std::string op;
      if (current().kind == TokenKind::Operator && kComparisons.contains(current().text)) {
        op = current().text;
        advance();
      } else if (is_keyword("in")) {
        op = "in";
        advance();
      } else if (is_keyword("not") && ahead(1).kind == TokenKind::Identifier && ahead(1).text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        return left;
      }
      left = expression(Binary{op, std::move(left), parse_additive()}, at);
    }
  }

  ExpressionPtr parse_additive() {
    return binary_chain(&Parser::parse_multiplicative,
                        [this] { return is_operator("+") || is_operator("-") || is_operator("~"); });
  }

  ExpressionPtr parse_multiplicative() {
    return binary_chain(&Parser::parse_test, [this] {
      return is_operator("*") || is_operator("/") || is_operator("//") || is_operator("%") || is_operator("**");
    });
  }

  ExpressionPtr parse_unary() {
    if (!is_operator("-") && !is_operator("+")) return parse_postfix();
    DepthGuard guard(*this);
    const Token at = current();
    advance();
    return expression(Unary{at.text, parse_unary()}, at);
  }

  ExpressionPtr parse_test() {
    DepthGuard guard(*this);
    ExpressionPtr operand = parse_filter();
    while (is_keyword("is")) {
      guard.deeper();
      const Token at = current();
      advance();
      TestApplication node;
      if (is_keyword("not")) {
        node.negated = true;
        advance();
      }
      node.name = identifier("a test name");
      if (is_operator("(")) {
        node.arguments = parse_arguments();
      } else if (current().kind == TokenKind::String || current().kind == TokenKind::Integer ||
                 current().kind == TokenKind::Float) {
        node.arguments.positional.push_back(parse_primary());  // `is equalto 3`
      }
      node.operand = std::move(operand);
      operand = expression(std::move(node), at);
    }
    return operand;
  }

  ExpressionPtr parse_filter() {
    DepthGuard guard(*this);
    ExpressionPtr operand = parse_unary();
    while (is_operator("|")) {
      guard.deeper();
      const Token at = current();
      advance();
      FilterApplication node;
      node.name = identifier("a filter name");
      if (is_operator("(")) node.arguments = parse_arguments();
      node.operand = std::move(operand);
      operand = expression(std::move(node), at);
    }
    return operand;
  }

  Arguments parse_arguments() {
    DepthGuard guard(*this);
    Arguments arguments;
    expect_operator("(");
    while (!is_operator(")")) {
      if (current().kind == TokenKind::Identifier && ahead(1).kind == TokenKind::Operator && ahead(1).text == "=") {
        std::string name = current().text;
        advance();
        advance();
        arguments.keyword.emplace_back(std::move(name), parse_expression());
      } else {
        if (!arguments.keyword.empty()) error("a positional argument follows a keyword argument");
        arguments.positional.push_back(parse_expression());
      }
      if (!is_operator(",")) break;
      advance();
    }
    expect_operator(")");
    return arguments;
  }

  ExpressionPtr parse_postfix() {
    DepthGuard guard(*this);
    ExpressionPtr operand = parse_primary();
    while (true) {
      guard.deeper();
      const Token at = current();
      if (is_operator(".")) {
        advance();
        operand = expression(Attribute{std::move(operand), identifier("an attribute name")}, at);
      } else if (is_operator("[")) {
        advance();
        operand = parse_subscript(std::move(operand), at);
      } else if (is_operator("(")) {
        operand = expression(Call{std::move(operand), parse_arguments()}, at);
      } else {
        return operand;
      }
    }
  }

  ExpressionPtr parse_subscript(ExpressionPtr object, const Token& at) {
    DepthGuard guard(*this);
    ExpressionPtr parts[3];
    int colons = 0;
    while (!is_operator("]")) {
      if (is_operator(":")) {
        if (++colons > 2) error("a slice has at most two ':'");
        advance();
        continue;
      }
      if (parts[colons]) error("expected ':' or ']', found " + describe_current());
      parts[colons] = parse_expression();
    }
    advance();
    if (colons == 0) {
      if (!parts[0]) error("an empty subscript []");
      return expression(Subscript{std::move(object), std::move(parts[0])}, at);
    }
    return expression(Slice{std::move(object), std::move(parts[0]), std::move(parts[1]), std::move(parts[2])}, at);
  }

  ExpressionPtr parse_primary() {
    DepthGuard guard(*this);
    const Token at = current();
    switch (at.kind) {
      case TokenKind::String: {
        std::string text;
        while (current().kind == TokenKind::String) {  // adjacent literals join, as in Python
          text += current().text;
          advance();
        }
        return expression(Literal{Value(std::move(text))}, at);
      }
      case TokenKind::Integer: {
        advance();
        try {
          return expression(Literal{Value(int64_t(std::stoll(at.text)))}, at);
        } catch (const std::out_of_range&) {
          fail("chat template: line {} column {}: the integer {} is too large", at.line, at.column, at.text);
        }
      }
      case TokenKind::Float: {
        advance();
        const double number = std::strtod(at.text.c_str(), nullptr);
        if (!std::isfinite(number)) fail("chat template: line {} column {}: the number {} is too large", at.line, at.column, at.text);
        return expression(Literal{Value(number)}, at);
      }
      case TokenKind::Identifier: {
        advance();
        if (at.text == "true" || at.text == "True") return expression(Literal{Value(true)}, at);
        if (at.text == "false" || at.text == "False") return expression(Literal{Value(false)}, at);
        if (at.text == "none" || at.text == "None") return expression(Literal{Value(None{})}, at);
        return expression(Name{at.text}, at);
      }
      case TokenKind::Operator:
        if (at.text == "(") {
          advance();
          if (is_operator(")")) {
            advance();
            return expression(ListLiteral{}, at);
          }
          ExpressionPtr first = parse_expression();
          if (!is_operator(",")) {
            expect_operator(")");
            return first;
          }
          ListLiteral tuple;
          tuple.items.push_back(std::move(first));
          while (is_operator(",")) {
            advance();
            if (is_operator(")")) break;
            tuple.items.push_back(parse_expression());
          }
          expect_operator(")");
          return expression(std::move(tuple), at);
        }
        if (at.text == "[") {
          advance();
          ListLiteral list;
          while (!is_operator("]")) {
            list.items.push_back(parse_expression());
            if (!is_operator(",")) break;
            advance();
          }
          expect_operator("]");
          return expression(std::move(list), at);
        }
        if (at.text == "{") {
          advance();
          DictLiteral dict;
          while (!is_operator("}")) {
            ExpressionPtr key = parse_expression();
            expect_operator(":");
            dict.entries.emplace_back(std::move(key), parse_expression());
            if (!is_operator(",")) break;
            advance();
          }
          expect_operator("}");
          return expression(std::move(dict), at);
        }
        break;
      default: break;
    }
    error("expected a value, found " + describe_current());
  }

  const std::vector<Token>& tokens_;
  size_t position_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).run(); }

}  // namespace shardlm::jinja
