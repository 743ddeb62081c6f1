#include "chat/jinja/interpreter.h"

#include <chrono>
#include <cmath>
#include <deque>

#include "chat/jinja/arguments.h"
#include "chat/jinja/filters.h"
#include "chat/jinja/globals.h"
#include "chat/jinja/limits.h"
#include "chat/jinja/members.h"
#include "chat/jinja/operators.h"
#include "chat/jinja/predicates.h"
#include "chat/jinja/text.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

class Scope {
 public:
  explicit Scope(Scope* parent) : parent_(parent) {}
  // A macro or caller() made here may run after the block that made it: the scope then stays.
  bool captured = false;
  const Value* find(const std::string& name) const {
    for (const Scope* scope = this; scope != nullptr; scope = scope->parent_)
      if (const Value* value = scope->variables_.find(name)) return value;
    return nullptr;
  }
  Scope* owner_of(const std::string& name) {
    for (Scope* scope = this; scope != nullptr; scope = scope->parent_)
      if (scope->variables_.find(name) != nullptr) return scope;
    return nullptr;
  }
  void set(const std::string& name, Value value) { variables_.set(name, std::move(value)); }

 private:
  Scope* parent_;
  Object variables_;
};

enum class Flow { Normal, Break, Continue };

class Interpreter {
 public:
  explicit Interpreter(const Object& variables) {
    Scope& globals = new_scope(nullptr);
    for (const auto& [name, value] : builtin_globals().entries()) globals.set(name, value);
    root_ = &new_scope(&globals);
    for (const auto& [name, value] : variables.entries()) root_->set(name, value);
  }

  std::string run(const Body& body) {
    std::string out;
    try {
      execute(body, *root_, out);
    } catch (const Error& error) {
      fail("chat template: line {} column {}: {}", line_, column_, error.what());
    }
    return out;
  }

 private:
  // Scopes are made and released in stack order. One that a macro or caller() captured is kept
  // until the render ends (and so are the scopes below it), so a callable that outlives its block
  // never points at a freed scope; the others are freed when their block ends.
  Scope& new_scope(Scope* parent) { return scopes_.emplace_back(parent); }
  void release(Scope& scope) {
    if (!scope.captured && &scopes_.back() == &scope) scopes_.pop_back();
  }
  template <typename Work>
  auto in_new_scope(Scope& parent, Work&& work) {
    Scope& scope = new_scope(&parent);
    struct Release {
      Interpreter& interpreter;
      Scope& scope;
      ~Release() { interpreter.release(scope); }
    } release{*this, scope};
    return work(scope);
  }

  struct CallDepth {
    explicit CallDepth(Interpreter& interpreter) : interpreter_(interpreter) {
      if (interpreter_.call_depth_ >= kMaxCallDepth) fail("macro calls nest deeper than {}", kMaxCallDepth);
      ++interpreter_.call_depth_;
    }
    ~CallDepth() { --interpreter_.call_depth_; }
    Interpreter& interpreter_;
  };

  void at(int line, int column) {
    line_ = line;
    column_ = column;
  }

  void step() {
    if (++steps_ > kMaxSteps) fail("the template runs more than {} loop iterations and macro calls", kMaxSteps);
    if (steps_ % 1024 == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count() > kMaxRenderSeconds)
      fail("the template runs longer than {} s", kMaxRenderSeconds);
  }

  static void append(std::string& out, std::string_view text) {
    check_string_size(out.size() + text.size(), "the output");
    out += text;
  }

  Flow execute(const Body& body, Scope& scope, std::string& out) {
    for (const auto& statement : body) {
      at(statement->line, statement->column);
      const Flow flow = std::visit([&](const auto& node) { return run_statement(node, scope, out); }, statement->node);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  Flow run_statement(const TextOutput& node, Scope&, std::string& out) {
    append(out, node.text);
    return Flow::Normal;
  }

  Flow run_statement(const ExpressionOutput& node, Scope& scope, std::string& out) {
    append(out, evaluate(*node.value, scope).to_output());
    return Flow::Normal;
  }

  Flow run_statement(const If& node, Scope& scope, std::string& out) {
    return execute(evaluate(*node.condition, scope).truthy() ? node.then : node.otherwise, scope, out);
  }

  static Array iterable_items(const Value& iterable) {
    if (iterable.is_array()) return iterable.as_array();
    Array items;
    if (iterable.is_object()) {
      for (const auto& [key, value] : iterable.as_object().entries()) items.emplace_back(key);
    } else if (iterable.is_string()) {
      const std::vector<char32_t> points = text::code_points(iterable.as_string());
      check_array_size(points.size(), "a loop over a string");
      for (char32_t point : points) items.emplace_back(text::from_code_points({point}));
    } else {
      fail("cannot loop over {}", iterable.type_name());
    }
    return items;
  }

  static void bind_targets(Scope& scope, const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
      scope.set(targets[0], item);
      return;
    }
    if (!item.is_array() || item.as_array().size() != targets.size())
      fail("cannot unpack {} into {} loop variables", item.type_name(), targets.size());
    for (size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], item.as_array()[i]);
  }

  Flow run_statement(const For& node, Scope& scope, std::string& out) {
    Array items = iterable_items(evaluate(*node.iterable, scope));
    if (node.condition) {
      Array kept;
      for (const Value& item : items) {
        step();
        const bool keep = in_new_scope(scope, [&](Scope& test_scope) {
          bind_targets(test_scope, node.targets, item);
          return evaluate(*node.condition, test_scope).truthy();
        });
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return execute(node.otherwise, scope, out);
    const int64_t length = int64_t(items.size());
    for (int64_t i = 0; i < length; ++i) {
      step();
      const Flow flow = in_new_scope(scope, [&](Scope& iteration) {
        bind_targets(iteration, node.targets, items[size_t(i)]);
        Object loop;
        loop.set("index", Value(i + 1));
        loop.set("index0", Value(i));
        loop.set("revindex", Value(length - i));
        loop.set("revindex0", Value(length - i - 1));
        loop.set("first", Value(i == 0));
        loop.set("last", Value(i == length - 1));
        loop.set("length", Value(length));
        loop.set("previtem", i > 0 ? items[size_t(i - 1)] : Value());
        loop.set("nextitem", i + 1 < length ? items[size_t(i + 1)] : Value());
        loop.set("cycle", Value(Callable([i](const CallArguments& arguments) {
                   if (arguments.positional.empty()) fail("loop.cycle() needs at least one value");
                   return arguments.positional[size_t(i) % arguments.positional.size()];
                 })));
        iteration.set("loop", Value(std::move(loop)));
        return execute(node.body, iteration, out);
      });
      if (flow == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Flow run_statement(const Set& node, Scope& scope, std::string&) {
    Value value;
    if (node.value) {
      value = evaluate(*node.value, scope);
    } else {
      std::string block;
      in_new_scope(scope, [&](Scope& inner) { return execute(node.body, inner, block); });
      value = Value(std::move(block));
    }
    const Expression& target = *node.target;
    if (const auto* name = std::get_if<Name>(&target.node)) {
      scope.set(name->name, std::move(value));
    } else if (const auto* attribute = std::get_if<Attribute>(&target.node)) {
      // `set ns.attr = value`: the namespace is changed where it was defined, so the change outlives
      // the loop it was made in.
      const std::string& holder = std::get<Name>(attribute->object->node).name;
      Scope* owner = scope.owner_of(holder);
      if (owner == nullptr) fail("'{}' is undefined", holder);
      const Value& current = *owner->find(holder);
      if (!current.is_object()) fail("cannot set an attribute of {} '{}'", current.type_name(), holder);
      Object changed = current.as_object();
      changed.set(attribute->name, std::move(value));
      owner->set(holder, Value(std::move(changed)));
    } else {
      const auto& names = std::get<ListLiteral>(target.node).items;
      if (!value.is_array() || value.as_array().size() != names.size())
        fail("cannot unpack {} into {} names", value.type_name(), names.size());
      for (size_t i = 0; i < names.size(); ++i)
        scope.set(std::get<Name>(names[i]->node).name, value.as_array()[i]);
    }
    return Flow::Normal;
  }

  Flow run_statement(const Macro& node, Scope& scope, std::string&) {
    scope.captured = true;
    scope.set(node.name, Value(make_macro(node, scope)));
    return Flow::Normal;
  }

  Callable make_macro(const Macro& node, Scope& defined_in) {
    return [this, &node, &defined_in](const CallArguments& arguments) -> Value {
      step();
      const CallDepth depth(*this);
      return in_new_scope(defined_in, [&](Scope& scope) {
        if (arguments.positional.size() > node.parameters.size())
          fail("macro {}() takes {} argument(s), got {}", node.name, node.parameters.size(), arguments.positional.size());
        for (size_t i = 0; i < node.parameters.size(); ++i) {
          const auto& [name, fallback] = node.parameters[i];
          if (i < arguments.positional.size())
            scope.set(name, arguments.positional[i]);
          else
            scope.set(name, fallback ? evaluate(*fallback, scope) : Value());
        }
        for (const auto& keyword : arguments.keyword) {
          const std::string& name = keyword.first;
          const bool known = name == "caller" || std::any_of(node.parameters.begin(), node.parameters.end(),
                                                             [&](const auto& parameter) { return parameter.first == name; });
          if (!known) fail("macro {}() got an unexpected keyword argument '{}'", node.name, name);
          scope.set(name, keyword.second);
        }
        std::string out;
        const int line = line_, column = column_;
        execute(node.body, scope, out);
        at(line, column);
        return Value(std::move(out));
      });
    };
  }

  Flow run_statement(const CallBlock& node, Scope& scope, std::string& out) {
    const Call& call = std::get<Call>(node.call->node);
    const Value callee = evaluate(*call.callee, scope);
    if (!callee.is_callable()) fail("{{% call %}} needs a macro, got {}", callee.type_name());
    CallArguments arguments = evaluate_arguments(call.arguments, scope);
    const Body* body = &node.body;
    scope.captured = true;
    arguments.keyword.emplace_back("caller", Value(Callable([this, body, &scope](const CallArguments&) -> Value {
                                     step();
                                     const CallDepth depth(*this);
                                     std::string rendered;
                                     in_new_scope(scope, [&](Scope& inner) { return execute(*body, inner, rendered); });
                                     return Value(std::move(rendered));
                                   })));
    append(out, callee.as_callable()(arguments).to_output());
    return Flow::Normal;
  }

  Flow run_statement(const FilterBlock& node, Scope& scope, std::string& out) {
    std::string block;
    in_new_scope(scope, [&](Scope& inner) { return execute(node.body, inner, block); });
    append(out, apply_filter(node.name, Value(std::move(block)), evaluate_arguments(node.arguments, scope)).to_output());
    return Flow::Normal;
  }

  Flow run_statement(const Break&, Scope&, std::string&) { return Flow::Break; }
  Flow run_statement(const Continue&, Scope&, std::string&) { return Flow::Continue; }

  CallArguments evaluate_arguments(const Arguments& arguments, Scope& scope) {
    CallArguments values;
    for (const auto& argument : arguments.positional) values.positional.push_back(evaluate(*argument, scope));
    for (const auto& [name, argument] : arguments.keyword) values.keyword.emplace_back(name, evaluate(*argument, scope));
    return values;
  }

  Value evaluate(const Expression& expression, Scope& scope) {
    at(expression.line, expression.column);
    return std::visit([&](const auto& node) { return evaluate_node(node, scope); }, expression.node);
  }

  Value evaluate_node(const Literal& node, Scope&) { return node.value; }

  Value evaluate_node(const ListLiteral& node, Scope& scope) {
    Array items;
    for (const auto& item : node.items) items.push_back(evaluate(*item, scope));
    return Value(std::move(items));
  }

  Value evaluate_node(const DictLiteral& node, Scope& scope) {
    Object object;
    for (const auto& [key, value] : node.entries) {
      const Value name = evaluate(*key, scope);
      if (!name.is_string() && !name.is_number()) fail("a dict key must be a string or number, got {}", name.type_name());
      object.set(name.to_output(), evaluate(*value, scope));
    }
    return Value(std::move(object));
  }

  Value evaluate_node(const Name& node, Scope& scope) {
    const Value* value = scope.find(node.name);
    return value != nullptr ? *value : Value();
  }

  Value evaluate_node(const Attribute& node, Scope& scope) {
    const Value object = evaluate(*node.object, scope);
    return member(object, node.name);
  }

  Value evaluate_node(const Subscript& node, Scope& scope) {
    const Value object = evaluate(*node.object, scope);
    const Value key = evaluate(*node.key, scope);
    return subscript(object, key);
  }

  Value evaluate_node(const Slice& node, Scope& scope) {
    const Value object = evaluate(*node.object, scope);
    auto bound = [&](const ExpressionPtr& part) -> std::optional<int64_t> {
      if (!part) return std::nullopt;
      const Value value = evaluate(*part, scope);
      if (value.is_none()) return std::nullopt;
      return expect_integer(value, "a slice bound");
    };
    return slice(object, bound(node.start), bound(node.stop), bound(node.step));
  }

  Value evaluate_node(const Call& node, Scope& scope) {
    const Value callee = evaluate(*node.callee, scope);
    const CallArguments arguments = evaluate_arguments(node.arguments, scope);
    if (!callee.is_callable()) {
      const auto* name = std::get_if<Name>(&node.callee->node);
      if (name != nullptr && callee.is_undefined()) fail("'{}' is undefined", name->name);
      fail("{} is not callable", callee.type_name());
    }
    return callee.as_callable()(arguments);
  }

  Value evaluate_node(const FilterApplication& node, Scope& scope) {
    const Value operand = evaluate(*node.operand, scope);
    return apply_filter(node.name, operand, evaluate_arguments(node.arguments, scope));
  }

  Value evaluate_node(const TestApplication& node, Scope& scope) {
    const Value operand = evaluate(*node.operand, scope);
    return Value(apply_test(node.name, operand, evaluate_arguments(node.arguments, scope)) != node.negated);
  }

  Value evaluate_node(const Unary& node, Scope& scope) {
    const Value operand = evaluate(*node.operand, scope);
    if (node.op == "not") return Value(!operand.truthy());
    if (operand.is_bool() || operand.is_integer()) {
      const int64_t number = expect_integer(operand, "an operand of unary -");
      if (node.op == "-" && number == INT64_MIN) fail("-({}) overflows a 64-bit integer", number);
      return Value(node.op == "-" ? -number : number);
    }
    if (!operand.is_float()) fail("bad operand type for unary {}: {}", node.op, operand.type_name());
    return Value(node.op == "-" ? -operand.as_number() : operand.as_number());
  }

  Value evaluate_node(const Binary& node, Scope& scope) {
    const Value left = evaluate(*node.left, scope);
    if (node.op == "and") return left.truthy() ? evaluate(*node.right, scope) : left;
    if (node.op == "or") return left.truthy() ? left : evaluate(*node.right, scope);
    const Value right = evaluate(*node.right, scope);
    return binary(node.op, left, right);
  }

  Value evaluate_node(const Conditional& node, Scope& scope) {
    if (evaluate(*node.condition, scope).truthy()) return evaluate(*node.then, scope);
    return node.otherwise ? evaluate(*node.otherwise, scope) : Value();
  }

  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::deque<Scope> scopes_;
  Scope* root_ = nullptr;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int line_ = 1, column_ = 1;
};

}  // namespace

std::string render(const Body& body, const Object& variables) { return Interpreter(variables).run(body); }

}  // namespace shardlm::jinja
