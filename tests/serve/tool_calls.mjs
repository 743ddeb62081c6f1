// The official openai client against `shardlm serve --enable-auto-tool-choice --tool-call-parser
// NAME` over a model whose greedy reply is "I will check." and a fixed call to get_weather in that
// parser's markup (make_scripted_model.py; test_reply_parsers.sh starts it): whole and streamed
// replies carry the call as tool_calls with finish_reason "tool_calls" and the text before it as
// content; the SDK's runTools calls the function with the arguments and sends the call and its
// result back through the model's chat template; tool_choice "none" and a request without tools
// get the reply as text (RAW_TEXT); call ids match ID_PATTERN.
// Usage: node tool_calls.mjs BASE_URL MODEL ID_PATTERN RAW_TEXT
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, model, idPattern, raw] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 });
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const tools = [{ type: "function", function: { name: "get_weather", description: "The weather in a city",
                                               parameters: { type: "object", properties: { city: { type: "string" } } } } }];
let passed = 0;
async function check(name, body) {
  await body();
  passed += 1;
  console.log(`ok - ${name}`);
}
function expectCall(message) {
  assert.equal(message.content, "I will check.");
  assert.equal(message.tool_calls.length, 1);
  const [call] = message.tool_calls;
  assert.equal(call.type, "function");
  assert.match(call.id, new RegExp(idPattern));
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris", unit: "celsius" });
}

await check("a reply holding a call comes back as tool_calls", async () => {
  const completion = await client.chat.completions.create({ model, messages, tools, temperature: 0 });
  assert.equal(completion.choices[0].finish_reason, "tool_calls");
  expectCall(completion.choices[0].message);
});

await check("streamed, the SDK assembles the same call from the deltas", async () => {
  const stream = client.chat.completions.stream({ model, messages, tools, temperature: 0 });
  let streamedText = "";
  stream.on("content", (delta) => { streamedText += delta; });
  const completion = await stream.finalChatCompletion();
  assert.equal(streamedText, "I will check.");  // the markup never streams as text
  assert.equal(completion.choices[0].finish_reason, "tool_calls");
  expectCall(completion.choices[0].message);
});

await check("runTools calls the function with the model's arguments and sends its result back", async () => {
  const calls = [];
  const runner = client.chat.completions.runTools({
    model, messages, temperature: 0,
    tools: [{ type: "function", function: { ...tools[0].function, parse: JSON.parse,
                                            function: (args) => { calls.push(args); return "18 degrees"; } } }],
  }, { maxChatCompletions: 2 });
  // The fixed model calls again after the result: two completions, two calls, then the runner stops.
  await runner.done();
  assert.equal(calls.length, 2);
  for (const args of calls) assert.deepEqual(args, { city: "Paris", unit: "celsius" });
  // The second request carried the assistant's call and the tool's result, as the SDK writes them,
  // and the server took it.
  assert.deepEqual(runner.messages.map((message) => message.role), ["user", "assistant", "tool", "assistant", "tool"]);
});

await check("tool_choice none, and a request without tools, get the text", async () => {
  for (const extra of [{ tools, tool_choice: "none" }, {}]) {
    const completion = await client.chat.completions.create({ model, messages, temperature: 0, ...extra });
    assert.equal(completion.choices[0].finish_reason, "stop");
    assert.equal(completion.choices[0].message.content, raw);
    assert.equal(completion.choices[0].message.tool_calls, undefined);
  }
});

await check("tool_choice required is refused naming the field", async () => {
  await assert.rejects(client.chat.completions.create({ model, messages, tools, tool_choice: "required" }),
                       (error) => error instanceof OpenAI.BadRequestError && error.param === "tool_choice");
});

console.log(`${passed} checks passed`);
