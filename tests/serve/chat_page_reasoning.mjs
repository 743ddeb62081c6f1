// The chat page of `shardlm serve --reasoning-parser qwen3` over a model whose greedy reply thinks,
// then answers (test_chat_page.sh starts it, make_scripted_model.py writes it), in headless
// Chromium: the thinking streams into its own block above the reply, the reply holds only the
// answer, and the next turn's history carries the answer without the thinking.
// Usage: node chat_page_reasoning.mjs BASE_URL CHROMIUM THINKING ANSWER
import assert from "node:assert/strict";
import { launchChromium } from "./headless_chromium.mjs";

const [baseURL, chromium, thinking, answer] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAILED: the chat page's reasoning test ran over 30 s");
  process.exit(1);
}, 30_000).unref();

const browser = await launchChromium(chromium);
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  const chatBodies = [];
  page.on("request", (request) => {
    if (request.url() === `${baseURL}/v1/chat/completions`) chatBodies.push(JSON.parse(request.postData()));
  });
  await page.goto(`${baseURL}/`);
  await page.waitForFunction(() => !document.getElementById("model").textContent.includes("loading"));
  await page.locator("#temperature").fill("0");
  for (const turn of [1, 2]) {
    await page.locator("#prompt").fill(`What is the weather in Paris? (${turn})`);
    await page.keyboard.press("Enter");
    await page.waitForFunction((n) => document.querySelectorAll(".message.assistant").length === n &&
                                      !document.querySelector(".message.assistant.streaming") &&
                                      !document.getElementById("send").disabled, {}, turn);
  }
  const thoughts = await page.$$eval(".thinking div", (views) => views.map((view) => view.textContent));
  const replies = await page.$$eval(".message.assistant", (views) => views.map((view) => view.textContent));
  assert.deepEqual(thoughts, [thinking, thinking]);
  assert.deepEqual(replies, [answer, answer]);
  // Each thinking block sits just above its reply, closed once the reply is done.
  assert.deepEqual(await page.$$eval(".thinking", (views) => views.map((view) => [view.open, view.nextElementSibling.className])),
                   [[false, "message assistant"], [false, "message assistant"]]);
  assert.deepEqual(chatBodies[1].messages.map((message) => [message.role, message.content]).slice(0, 2),
                   [["user", "What is the weather in Paris? (1)"], ["assistant", answer]]);
  assert.deepEqual(pageErrors, []);
  console.log("ok - thinking streams above the reply, which holds the answer alone, and stays out of the history");
} finally {
  await browser.close();
}
