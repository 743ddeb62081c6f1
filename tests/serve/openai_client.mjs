// The official openai client against a running `shardlm serve` (test_serve.sh starts it): greedy
// completions of 32 concurrent requests equal `shardlm generate`, streams concatenate to the same
// text and end with usage, penalties and logit_bias give what `shardlm generate` gives under them,
// errors arrive as the SDK's typed errors naming the field, and a client
// that aborts a stream leaves the server serving. Chat completions equal completions of the
// conversation as @huggingface/jinja renders the model's template (tests/chat's oracle package).
// Usage: node openai_client.mjs BASE_URL MODEL API_KEY SHARDLM_BINARY
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
// Installed by `npm ci --prefix tests/chat`, the chat-template oracle's package.
import { Template } from "../chat/node_modules/@huggingface/jinja/dist/index.js";

const [baseURL, model, apiKey, shardlm] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
let passed = 0;
async function check(name, body) {
  await body();
  passed += 1;
  console.log(`ok - ${name}`);
}

const words = ["In the beginning", "And God said", "The LORD is my shepherd", "Blessed are", "And it came to pass",
               "For God so loved", "Let there be", "Thou shalt", "Behold", "And the earth was"];
// 32 prompts of different lengths.
const prompts = Array.from({ length: 32 }, (_, i) => words[i % 10] + (i >= 10 ? ` ${words[(i * 3) % 10]}` : "") +
                                                     (i >= 20 ? ` ${words[(i * 7) % 10]}` : ""));
const maxTokens = 12;
const reference = execFileSync(shardlm, ["generate", "--json", "-n", String(maxTokens), "--temperature", "0",
                                         ...prompts.flatMap((p) => ["-p", p])], { encoding: "utf8" })
  .trim().split("\n").map((line) => JSON.parse(line));
assert.equal(reference.length, prompts.length);

await check("models.list names the served model", async () => {
  const models = await client.models.list();
  assert.equal(models.data[0].id, model);
});

await check("32 concurrent greedy completions equal shardlm generate", async () => {
  const results = await Promise.all(prompts.map((prompt) =>
    client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0 })));
  results.forEach((result, i) => {
    assert.equal(result.object, "text_completion");
    assert.equal(result.choices[0].text, reference[i].text, `prompt ${i}: ${prompts[i]}`);
    assert.equal(result.choices[0].finish_reason, reference[i].finish_reason);
    assert.equal(result.usage.prompt_tokens, reference[i].prompt_ids.length);
    assert.equal(result.usage.completion_tokens, reference[i].output_ids.length);
  });
});

await check("a stream concatenates to the same text and ends with usage", async () => {
  const stream = await client.completions.create({ model, prompt: prompts[0], max_tokens: maxTokens, temperature: 0,
                                                   stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.text;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(text, reference[0].text);
  assert.equal(finish, reference[0].finish_reason);
  assert.equal(usage.completion_tokens, reference[0].output_ids.length);
});

await check("token-id prompts and lists of prompts", async () => {
  const ids = await client.completions.create({ model, prompt: reference[1].prompt_ids, max_tokens: maxTokens,
                                                temperature: 0 });
  assert.equal(ids.choices[0].text, reference[1].text);
  const both = await client.completions.create({ model, prompt: [prompts[2], prompts[3]], max_tokens: maxTokens,
                                                 temperature: 0 });
  assert.deepEqual(both.choices.map((c) => c.text), [reference[2].text, reference[3].text]);
});

await check("a seed repeats a sampled completion", async () => {
  const request = { model, prompt: prompts[4], max_tokens: maxTokens, temperature: 1.0, top_p: 0.9, seed: 7 };
  const first = await client.completions.create(request);
  const second = await client.completions.create(request);
  assert.equal(first.choices[0].text, second.choices[0].text);
});

await check("n choices per prompt and echo, whole and streamed", async () => {
  const greedy = await client.completions.create({ model, prompt: [prompts[0], prompts[1]], n: 2, echo: true,
                                                   max_tokens: maxTokens, temperature: 0 });
  assert.deepEqual(greedy.choices.map((c) => c.index), [0, 1, 2, 3]);
  greedy.choices.forEach((choice, i) => {
    const which = Math.floor(i / 2);
    assert.equal(choice.text, prompts[which] + reference[which].text, `choice ${i}`);
  });
  // A prompt's tokens count once, however many choices it has.
  assert.equal(greedy.usage.prompt_tokens, reference[0].prompt_ids.length + reference[1].prompt_ids.length);
  assert.equal(greedy.usage.completion_tokens, 2 * (reference[0].output_ids.length + reference[1].output_ids.length));
  const sampled = { model, prompt: prompts[7], n: 3, max_tokens: maxTokens, temperature: 1.0, seed: 11 };
  const first = await client.completions.create(sampled);
  const again = await client.completions.create(sampled);
  assert.deepEqual(first.choices.map((c) => c.text), again.choices.map((c) => c.text));
  assert.ok(new Set(first.choices.map((c) => c.text)).size > 1, "n samples of one prompt should differ");
  const stream = await client.completions.create({ ...sampled, echo: true, stream: true });
  const texts = ["", "", ""];
  for await (const chunk of stream) for (const choice of chunk.choices) texts[choice.index] += choice.text;
  assert.deepEqual(texts, first.choices.map((c) => prompts[7] + c.text));
});

await check("logprobs: greedy tokens are the likeliest, whole and streamed, completions and chat", async () => {
  const whole = await client.completions.create({ model, prompt: prompts[2], max_tokens: 6, temperature: 0, logprobs: 3,
    ignore_eos: true });
  const { logprobs } = whole.choices[0];
  assert.equal(logprobs.tokens.length, 6);
  assert.equal(logprobs.tokens.join(""), whole.choices[0].text);
  logprobs.tokens.forEach((token, i) => {
    const alternatives = Object.values(logprobs.top_logprobs[i]);
    assert.ok(alternatives.length >= 3, "3 alternatives (the sampled token among them)");
    assert.ok(logprobs.token_logprobs[i] <= 0);
    assert.equal(logprobs.token_logprobs[i], Math.max(...alternatives), "greedy takes the likeliest");
    assert.equal(logprobs.text_offset[i], [...logprobs.tokens.slice(0, i).join("")].length, "offsets count characters");
  });
  const stream = await client.completions.create({ model, prompt: prompts[2], max_tokens: 6, temperature: 0, logprobs: 3,
    ignore_eos: true, stream: true });
  const streamed = [];
  for await (const chunk of stream) for (const choice of chunk.choices) if (choice.logprobs) streamed.push(...choice.logprobs.token_logprobs);
  assert.deepEqual(streamed, logprobs.token_logprobs);
  const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Behold" }], max_tokens: 4,
    temperature: 0, logprobs: true, top_logprobs: 2, ignore_eos: true });
  const content = chat.choices[0].logprobs.content;
  assert.equal(content.map((entry) => entry.token).join(""), chat.choices[0].message.content);
  for (const entry of content) {
    assert.equal(entry.top_logprobs.length, 2);
    assert.equal(entry.logprob, entry.top_logprobs[0].logprob);
    assert.deepEqual(entry.bytes, [...Buffer.from(entry.token, "utf8")]);
  }
  const plain = await client.completions.create({ model, prompt: prompts[2], max_tokens: 2, temperature: 0 });
  assert.equal(plain.choices[0].logprobs, null, "no logprobs unless asked");
});

await check("echo with logprobs scores the prompt's tokens, whole and streamed", async () => {
  const nPrompt = reference[5].prompt_ids.length;
  const request = { model, prompt: prompts[5], max_tokens: 5, temperature: 0, logprobs: 2, ignore_eos: true };
  const plain = await client.completions.create(request);
  const echoed = await client.completions.create({ ...request, echo: true });
  const { logprobs } = echoed.choices[0];
  assert.equal(echoed.choices[0].text, prompts[5] + plain.choices[0].text);
  assert.equal(logprobs.tokens.length, nPrompt + 5);
  assert.equal(logprobs.token_logprobs[0], null, "nothing comes before the first prompt token");
  assert.equal(logprobs.top_logprobs[0], null);
  for (let i = 1; i < nPrompt; i += 1) {
    assert.ok(logprobs.token_logprobs[i] <= 0, `prompt token ${i}`);
    assert.ok(Object.keys(logprobs.top_logprobs[i]).length >= 2);
    assert.ok(Math.max(...Object.values(logprobs.top_logprobs[i])) >= logprobs.token_logprobs[i]);
  }
  assert.deepEqual(logprobs.token_logprobs.slice(nPrompt), plain.choices[0].logprobs.token_logprobs);
  assert.equal(logprobs.text_offset[nPrompt], [...logprobs.tokens.slice(0, nPrompt).join("")].length);
  // The generated tokens scored as a prompt (prefill) have the log-probabilities decoding gave them.
  assert.ok(reference[5].output_ids.length >= 5, "the reference continues 5 tokens before its end");
  const extended = reference[5].prompt_ids.concat(reference[5].output_ids.slice(0, 5));
  const rescored = await client.completions.create({ model, prompt: extended, max_tokens: 1, temperature: 0, logprobs: 0,
    echo: true });
  rescored.choices[0].logprobs.token_logprobs.slice(nPrompt, nPrompt + 5).forEach((value, i) =>
    assert.ok(Math.abs(value - plain.choices[0].logprobs.token_logprobs[i]) < 1e-4, `token ${i}: ${value}`));
  const stream = await client.completions.create({ ...request, echo: true, stream: true });
  let text = "";
  const streamed = [];
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.text;
      if (choice.logprobs) streamed.push(...choice.logprobs.token_logprobs);
    }
  }
  assert.equal(text, echoed.choices[0].text);
  assert.deepEqual(streamed, logprobs.token_logprobs);
});

await check("penalties, logit_bias and min_p apply as shardlm generate applies them", async () => {
  const penalties = { presence_penalty: 0.5, frequency_penalty: 0.8, repetition_penalty: 1.3 };
  const [generated] = execFileSync(shardlm, ["generate", "--json", "-n", String(maxTokens), "--temperature", "0",
                                             "--presence-penalty", "0.5", "--frequency-penalty", "0.8",
                                             "--repetition-penalty", "1.3", "-p", prompts[3]], { encoding: "utf8" })
    .trim().split("\n").map((line) => JSON.parse(line));
  assert.notEqual(generated.text, reference[3].text, "the penalties should change this prompt's greedy text");
  const penalised = await client.completions.create({ model, prompt: prompts[3], max_tokens: maxTokens, temperature: 0,
                                                      ...penalties });
  assert.equal(penalised.choices[0].text, generated.text);
  // vLLM's min_p: at 1 only the likeliest token is kept, so temperature 1 decodes greedily.
  const minP = await client.completions.create({ model, prompt: prompts[5], max_tokens: maxTokens, temperature: 1,
                                                 min_p: 1, seed: 11 });
  assert.equal(minP.choices[0].text, reference[5].text);
  // A bias of 100 makes one token every choice; -100 rules the greedy first token out.
  const root = baseURL.replace(/\/v1\/?$/, "");
  const detokenize = async (tokens) => (await (await fetch(`${root}/detokenize`, {
    method: "POST", headers: { Authorization: `Bearer ${apiKey}` }, body: JSON.stringify({ tokens }) })).json()).prompt;
  const forced = reference[0].output_ids.at(-1);
  const biased = await client.completions.create({ model, prompt: prompts[0], max_tokens: 4, temperature: 0,
                                                   logit_bias: { [forced]: 100 } });
  assert.equal(biased.choices[0].text, await detokenize([forced, forced, forced, forced]));
  const first = reference[0].output_ids[0];
  const banned = await client.completions.create({ model, prompt: prompts[0], max_tokens: 1, temperature: 0,
                                                   logit_bias: { [first]: -100 } });
  assert.notEqual(banned.choices[0].text, await detokenize([first]));
});

async function expectError(kind, status, param, body, options = {}) {
  const target = options.client ?? client;
  await assert.rejects(() => target.completions.create(body), (error) => {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${error.constructor.name}: ${error.message}`);
    assert.equal(error.status, status);
    if (param !== undefined) assert.equal(error.param, param);
    return true;
  });
}

await check("bad fields are 400s naming the field", async () => {
  await expectError(OpenAI.BadRequestError, 400, "max_tokens", { model, prompt: "a", max_tokens: 0 });
  await expectError(OpenAI.BadRequestError, 400, "temperature", { model, prompt: "a", temperature: -1 });
  await expectError(OpenAI.BadRequestError, 400, "model", { model: "no-such-model", prompt: "a" });
  await expectError(OpenAI.BadRequestError, 400, "max_tokens", { model, prompt: "a", max_tokens: 100000 });
  await expectError(OpenAI.BadRequestError, 400, "prompt", { model, prompt: [1, 99999999] });
  await expectError(OpenAI.BadRequestError, 400, "logprobs", { model, prompt: "a", logprobs: 21 });
  await expectError(OpenAI.BadRequestError, 400, "presence_penalty", { model, prompt: "a", presence_penalty: 3 });
  await expectError(OpenAI.BadRequestError, 400, "logit_bias", { model, prompt: "a", logit_bias: { word: 1 } });
  await expectError(OpenAI.BadRequestError, 400, "logit_bias", { model, prompt: "a", logit_bias: { 99999999: 1 } });
});

await check("a wrong API key is a 401", async () => {
  const wrong = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
  await expectError(OpenAI.AuthenticationError, 401, undefined, { model, prompt: "a" }, { client: wrong });
});

await check("an aborted stream leaves the server serving", async () => {
  const controller = new AbortController();
  const stream = await client.completions.create({ model, prompt: prompts[5], max_tokens: 400, temperature: 0,
                                                   stream: true }, { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      chunks += chunk.choices.length;
      if (chunks === 3) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIUserAbortError, `${error}`);
  }
  assert.equal(chunks, 3);
  const after = await client.completions.create({ model, prompt: prompts[6], max_tokens: maxTokens, temperature: 0 });
  assert.equal(after.choices[0].text, reference[6].text);
});

// The bundled model's template, rendered as Transformers.js renders it, then tokenized by the server
// without added special tokens (the template writes them): the ids a chat request must be run on.
const chatTemplate = new Template(readFileSync(new URL("../../models/kjv-llama/chat_template.jinja", import.meta.url), "utf8"));
async function renderedIds(messages) {
  const prompt = chatTemplate.render({ messages, add_generation_prompt: true, bos_token: "<|begin_of_text|>",
                                       eos_token: "<|end_of_text|>" });
  const response = await fetch(`${baseURL.replace(/\/v1$/, "")}/tokenize`, {
    method: "POST", body: JSON.stringify({ prompt, add_special_tokens: false }) });
  return (await response.json()).tokens;
}
const conversations = prompts.slice(0, 8).map((prompt, i) => [
  ...(i % 2 ? [{ role: "system", content: "Answer as the scripture does." }] : []),
  { role: "user", content: prompt },
  ...(i % 3 === 0 ? [{ role: "assistant", content: words[(i + 1) % 10] }, { role: "user", content: words[(i + 2) % 10] }] : []),
]);

await check("8 concurrent greedy chats equal completions of the rendered template", async () => {
  const [chats, expected] = await Promise.all([
    Promise.all(conversations.map((messages) =>
      client.chat.completions.create({ model, messages, max_completion_tokens: maxTokens, temperature: 0 }))),
    Promise.all(conversations.map(async (messages) => {
      const ids = await renderedIds(messages);
      const completion = await client.completions.create({ model, prompt: ids, max_tokens: maxTokens, temperature: 0 });
      return { ids, completion };
    })),
  ]);
  chats.forEach((chat, i) => {
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.choices[0].message.role, "assistant");
    assert.equal(chat.choices[0].message.content, expected[i].completion.choices[0].text, `conversation ${i}`);
    assert.equal(chat.choices[0].finish_reason, expected[i].completion.choices[0].finish_reason);
    assert.equal(chat.usage.prompt_tokens, expected[i].ids.length);
  });
});

await check("a chat stream names the role first and concatenates to the same reply", async () => {
  const request = { model, messages: conversations[3], max_tokens: maxTokens, temperature: 0 };
  const whole = await client.chat.completions.create(request);
  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  const deltas = [];
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      deltas.push(choice.delta);
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(deltas[0].role, "assistant");
  assert.equal(deltas.map((delta) => delta.content ?? "").join(""), whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

await check("chat errors name the field", async () => {
  const expectChatError = (param, body) => assert.rejects(() => client.chat.completions.create(body), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.param, param);
    return true;
  });
  await expectChatError("messages", { model, messages: [] });
  await expectChatError("max_completion_tokens", { model, messages: conversations[0], max_completion_tokens: 0 });
  await expectChatError("messages", { model, messages: [{ role: "tool", content: "x", tool_call_id: "1" }] });
  await expectChatError("messages[0].content[0].type",
                        { model, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] });
});

console.log(`openai client: ${passed} passed, 0 failed`);
