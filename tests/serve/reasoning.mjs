// The official openai client against `shardlm serve --reasoning-parser qwen3
// --enable-auto-tool-choice --tool-call-parser hermes` over a model whose greedy reply thinks, then
// calls a tool (make_scripted_model.py; test_reply_parsers.sh starts it): the thinking comes back
// as `reasoning` (and `reasoning_content`), never as content, whole and streamed, and the call is
// read from the answer after it.
// Usage: node reasoning.mjs BASE_URL MODEL
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 });
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
const thinking = "The user asks about Paris.";
const call = '\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n';
let passed = 0;
async function check(name, body) {
  await body();
  passed += 1;
  console.log(`ok - ${name}`);
}

await check("a whole reply: reasoning apart, the call read from the answer", async () => {
  const completion = await client.chat.completions.create({ model, messages, tools, temperature: 0 });
  const { message, finish_reason } = completion.choices[0];
  assert.equal(message.reasoning, thinking);
  assert.equal(message.reasoning_content, thinking);
  assert.equal(message.content, "\n\nI will check.");
  assert.equal(finish_reason, "tool_calls");
  assert.equal(message.tool_calls[0].function.name, "get_weather");
  assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: "Paris" });
});

await check("streamed: reasoning deltas, then content deltas, then the call", async () => {
  const stream = await client.chat.completions.create({ model, messages, tools, temperature: 0, stream: true });
  let reasoning = "", content = "", calls = [], finish = null, contentBeforeReasoningEnded = false;
  for await (const chunk of stream) {
    const [choice] = chunk.choices;
    if (choice.delta.reasoning) {
      assert.equal(choice.delta.reasoning_content, choice.delta.reasoning);
      if (content) contentBeforeReasoningEnded = true;
      reasoning += choice.delta.reasoning;
    }
    content += choice.delta.content ?? "";
    calls.push(...(choice.delta.tool_calls ?? []));
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(reasoning, thinking);
  assert.equal(content, "\n\nI will check.");
  assert.ok(!contentBeforeReasoningEnded);
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, "get_weather");
});

await check("without tools, the answer is text after the reasoning", async () => {
  const completion = await client.chat.completions.create({ model, messages, temperature: 0 });
  assert.equal(completion.choices[0].message.reasoning, thinking);
  assert.equal(completion.choices[0].message.content, `\n\nI will check.<tool_call>${call}</tool_call>`);
  assert.equal(completion.choices[0].finish_reason, "stop");
});

console.log(`${passed} checks passed`);
