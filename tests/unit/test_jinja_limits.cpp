// Hostile chat templates (a template comes with a downloaded model) end in shardlm::Error, never in
// a crash, a hang or unbounded memory: huge strides and ranges, recursion through caller(), long
// chains, deep nesting, doubling lists and strings, huge literals and integer overflow. The inputs
// are those a review found crashing or stalling the first version.
#include <gtest/gtest.h>

#include <string>

#include "chat/jinja/template.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

std::string render(const std::string& source) { return Template(source).render(nlohmann::ordered_json::object()); }

std::string repeat(const std::string& text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

TEST(JinjaLimits, HugeStridesAndRangesAreCountedNotStepped) {
  EXPECT_EQ(render("{{ [1, 2, 3][2::9223372036854775806] }}"), "[3]");
  EXPECT_EQ(render("{{ [1, 2, 3][1::9223372036854775807] }}"), "[2]");
  EXPECT_EQ(render("{{ 'abc'[::-9223372036854775807] }}"), "c");
  EXPECT_EQ(render("{% for i in range(9223372036854775806, 9223372036854775807, 2) %}{{ i }}{% endfor %}"),
            "9223372036854775806");
  EXPECT_EQ(render("{% for i in range(-9223372036854775807, 9223372036854775807, 9223372036854775807) %}{{ i }},{% endfor %}"),
            "-9223372036854775807,0,");
  EXPECT_THROW(render("{{ range(2000000)|length }}"), Error);
}

TEST(JinjaLimits, RecursionThroughCallerIsBounded) {
  EXPECT_THROW(render("{% set ns = namespace(c=none) %}{% macro m() %}{% set ns.c = caller %}{% endmacro %}"
                      "{% call m() %}{{ ns.c() }}{% endcall %}{{ ns.c() }}"),
               Error);
  EXPECT_THROW(render("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}"), Error);
}

TEST(JinjaLimits, LongChainsAreRefusedWhileParsing) {
  EXPECT_THROW(Template("{% if false %}" + repeat("{% elif false %}", 50000) + "{% endif %}"), Error);
  EXPECT_THROW(Template("{{ x" + repeat(".a", 100000) + " }}"), Error);
  EXPECT_THROW(Template("{{ 1" + repeat(" + 1", 100000) + " }}"), Error);
  EXPECT_THROW(Template("{{ 1" + repeat("|abs", 100000) + " }}"), Error);
  EXPECT_THROW(Template(repeat("{{ (", 5000)), Error);
  EXPECT_EQ(render("{{ 1" + repeat(" + 1", 200) + " }}"), "201");  // a long but sane chain renders
}

TEST(JinjaLimits, NestingDoublingAndHugeResultsAreBounded) {
  EXPECT_THROW(render("{% set ns = namespace(a=[]) %}{% for i in range(100000) %}{% set ns.a = [ns.a] %}{% endfor %}x"),
               Error);
  EXPECT_THROW(render("{% set s = 'x' * 16000000 %}{% set ns = namespace(a=[s]) %}{% for i in range(22) %}"
                      "{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a|length }}"),
               Error);
  EXPECT_THROW(render("{{ ('x' * 4000).replace('', 'y' * 16000000) }}"), Error);
  EXPECT_THROW(render("{{ ('x' * 16000000).split('x')|length }}"), Error);
  EXPECT_THROW(render("{{ ('x' * 16000000)|list|length }}"), Error);
  EXPECT_THROW(render("{% for c in 'x' * 16000000 %}{% endfor %}"), Error);
  EXPECT_THROW(render("{{ ['y' * 9000000, 'y' * 9000000]|join }}"), Error);
  EXPECT_THROW(render("{{ ['y' * 9000000, 'y' * 9000000]|tojson }}"), Error);
}

TEST(JinjaLimits, LiteralsAndArithmeticDoNotOverflow) {
  EXPECT_THROW(Template("{{ " + repeat("9", 400) + ".5 }}"), Error);
  EXPECT_THROW(render("{{ -(-9223372036854775807 - 1) }}"), Error);
  EXPECT_THROW(render("{{ 9223372036854775807 + 1 }}"), Error);
  EXPECT_THROW(render("{{ 99999999999999999999 }}"), Error);
  EXPECT_EQ(render("{{ (10.0 ** 300)|int }}"), "0");  // out of range: the filter's default
}

TEST(JinjaLimits, TheStepBudgetEndsEndlessWork) {
  EXPECT_THROW(render("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"), Error);
}

}  // namespace
}  // namespace shardlm::jinja
