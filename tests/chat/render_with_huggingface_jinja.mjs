// Reference chat-template renderings from @huggingface/jinja (pinned in package.json) for the C++ Jinja
// engine's oracle test (test_chat_template_oracle.cpp).
//
// Usage: node render_with_huggingface_jinja.mjs CASES_JSON [TEMPLATE_DIR] [--check]
//   CASES_JSON holds a JSON list of {"name", "template", "context", "expect_error"?}; "template" is a file
//   name under TEMPLATE_DIR (default: tests/fixtures/chat_templates next to this directory).
//   Prints one JSON object to stdout, in case order:
//     {name: {"output": string} | {"error": message, "phase": "parse" | "render"}, ...}
//   "phase" says whether new Template(source) threw (a syntax error) or render(context) did.
//   Each template is rendered the way transformers.js does it: new Template(source).render(context)
//   (Template sets lstrip_blocks and trim_blocks; the template's bytes are read as UTF-8, untouched).
//   --check also reports on stderr every case whose outcome contradicts its "expect_error" (and exits 1),
//   for people editing cases.json; the C++ test makes the same check itself.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const args = process.argv.slice(2);
const check = args.includes("--check");
const [casesPath, templateDirArgument] = args.filter((arg) => arg !== "--check");
if (!casesPath) {
  console.error("usage: node render_with_huggingface_jinja.mjs CASES_JSON [TEMPLATE_DIR] [--check]");
  process.exit(2);
}
const templateDir =
  templateDirArgument ?? join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "chat_templates");

const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const results = {};
const contradictions = [];
for (const testCase of cases) {
  if (Object.hasOwn(results, testCase.name)) {
    console.error(`duplicate case name: ${testCase.name}`);
    process.exit(2);
  }
  // A missing template file is a broken cases.json, not a rendering error: fail loudly.
  const source = readFileSync(join(templateDir, testCase.template), "utf8");
  let template;
  try {
    template = new Template(source);
  } catch (error) {
    results[testCase.name] = { error: String(error?.message ?? error), phase: "parse" };
  }
  if (template) {
    try {
      results[testCase.name] = { output: template.render(testCase.context) };
    } catch (error) {
      results[testCase.name] = { error: String(error?.message ?? error), phase: "render" };
    }
  }
  const failed = Object.hasOwn(results[testCase.name], "error");
  if (failed !== Boolean(testCase.expect_error)) {
    contradictions.push(
      `${testCase.name}: ${failed ? `unexpected error: ${results[testCase.name].error}` : "rendered, but expect_error is set"}`,
    );
  }
}
process.stdout.write(JSON.stringify(results));
if (check && contradictions.length > 0) {
  console.error(contradictions.join("\n"));
  process.exit(1);
}
