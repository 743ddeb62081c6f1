// The chat page of a running `shardlm serve` (test_chat_page.sh starts it with an API key) in
// headless Chromium: the page is public while the API is not, it asks for the key and then names the
// model, a reply streams in (seen growing before it is done) and equals the same request answered
// without streaming, later turns carry the history, Stop aborts a reply, an API error shows the
// server's message, and nothing is loaded from elsewhere. Each reply is checked by replaying the body
// the page posted without `stream`, so the page's requests and its rendering are both checked.
// Usage: node chat_page.mjs BASE_URL MODEL API_KEY SCREENSHOT_PATH CHROMIUM
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { launchChromium } from "./headless_chromium.mjs";

const [baseURL, model, apiKey, screenshotPath, chromium] = process.argv.slice(2);
setTimeout(() => {
  console.error("FAILED: the chat page test ran over 60 s");
  process.exit(1);
}, 60_000).unref();

let passed = 0;
async function check(name, body) {
  try {
    await body();
  } catch (error) {
    console.log(`FAILED - ${name}`);  // a puppeteer timeout alone does not say what was awaited
    throw error;
  }
  passed += 1;
  console.log(`ok - ${name}`);
}

// The page's request answered as one JSON body: what the streamed reply must add up to.
async function replayed(body) {
  const response = await fetch(`${baseURL}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ ...body, stream: false }),
  });
  return { status: response.status, json: await response.json() };
}

const browser = await launchChromium(chromium);
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.setViewport({ width: 900, height: 760 });
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  const requestedURLs = [];
  const chatBodies = [];  // each body the page posted to /v1/chat/completions
  page.on("request", (request) => {
    requestedURLs.push(request.url());
    if (request.url() === `${baseURL}/v1/chat/completions`) chatBodies.push(JSON.parse(request.postData()));
  });

  const text = (selector) => page.$eval(selector, (element) => element.textContent);
  const assistantTexts = () => page.$$eval(".message.assistant", (views) => views.map((view) => view.textContent));
  const userTexts = () => page.$$eval(".message.user", (views) => views.map((view) => view.textContent));
  const errorShown = () => page.$eval("#error", (element) => (element.hidden ? null : element.textContent));
  async function settings(maxTokens, temperature) {
    await page.locator("#max-tokens").fill(String(maxTokens));
    await page.locator("#temperature").fill(String(temperature));
  }
  // Until the reply being streamed (the n-th) has ended, however it ended.
  async function replyEnded(n) {
    await page.waitForFunction((n) => document.querySelectorAll(".message.assistant").length === n &&
                                      !document.querySelector(".message.assistant.streaming") &&
                                      !document.getElementById("send").disabled, {}, n);
  }
  // Each state of the last reply as the page rendered it: its text, and whether it was still streaming.
  async function recordReplyStates() {
    await page.evaluate(() => {
      window.replyStates = [];
      window.replyObserver?.disconnect();
      window.replyObserver = new MutationObserver(() => {
        const views = document.querySelectorAll(".message.assistant");
        const last = views[views.length - 1];
        if (last) window.replyStates.push({ text: last.textContent, streaming: last.classList.contains("streaming") });
      });
      window.replyObserver.observe(document.getElementById("messages"),
                                   { subtree: true, childList: true, characterData: true, attributes: true });
    });
  }

  await check("GET / serves the page without the API key, which /v1 needs", async () => {
    const response = await fetch(`${baseURL}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await response.text(), /^<!doctype html>/);
    assert.equal((await fetch(`${baseURL}/v1/models`)).status, 401);
  });

  const keyless = await (await fetch(`${baseURL}/v1/models`)).json();
  await page.goto(`${baseURL}/`, { waitUntil: "networkidle0" });
  await check("the page shows the server's answer without a key, then the model with one", async () => {
    assert.equal(await errorShown(), keyless.error.message);
    await page.locator("#api-key").fill(apiKey);
    await page.keyboard.press("Tab");  // the key is used once the field is left (its change event)
    await page.waitForFunction((model) => document.getElementById("model").textContent === model, {}, model);
    assert.equal(await errorShown(), null);
  });

  const firstTurn = "Who made the heaven and the earth?";
  let firstReply;
  await check("a reply streams in, growing, and equals the same request answered whole", async () => {
    await settings(24, 0);
    await recordReplyStates();
    await page.type("#prompt", firstTurn);
    await page.click("#send");
    await replyEnded(1);
    [firstReply] = await assistantTexts();
    const posted = chatBodies.at(-1);
    assert.deepEqual(posted, { model, messages: [{ role: "user", content: firstTurn }], stream: true, max_tokens: 24,
                               temperature: 0 });
    const whole = await replayed(posted);
    assert.equal(whole.status, 200);
    assert.equal(firstReply, whole.json.choices[0].message.content);
    assert.ok(firstReply.length > 0);
    const states = await page.evaluate(() => window.replyStates);
    for (const state of states) assert.ok(firstReply.startsWith(state.text), `a state that is not a prefix: ${state.text}`);
    assert.ok(states.some((state) => state.streaming && state.text.length > 0 && state.text.length < firstReply.length),
              `no partial reply was rendered while streaming: ${JSON.stringify(states)}`);
    assert.deepEqual(await userTexts(), [firstTurn]);
  });

  const secondTurn = "And what was upon the face of the deep?\nSpeak of the waters.";
  await check("Enter sends, Shift+Enter breaks the line, and the second turn carries the first", async () => {
    const [firstLine, secondLine] = secondTurn.split("\n");
    await page.type("#prompt", firstLine);
    await page.keyboard.down("Shift");
    await page.keyboard.press("Enter");
    await page.keyboard.up("Shift");
    await page.type("#prompt", secondLine);
    await page.keyboard.press("Enter");
    await replyEnded(2);
    const posted = chatBodies.at(-1);
    assert.deepEqual(posted.messages, [{ role: "user", content: firstTurn }, { role: "assistant", content: firstReply },
                                       { role: "user", content: secondTurn }]);
    const whole = await replayed(posted);
    assert.equal((await assistantTexts())[1], whole.json.choices[0].message.content);
    assert.deepEqual(await userTexts(), [firstTurn, secondTurn]);
  });

  await check("Stop aborts the stream and keeps the part that arrived", async () => {
    await settings("", 0);  // no max_tokens: the reply may run to the context's end, long after Stop
    await page.type("#prompt", "Tell me of the kings of Israel.");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector(".message.assistant.streaming")?.textContent.length > 0);
    await page.click("#stop");
    await replyEnded(3);
    const stopped = (await assistantTexts())[2];
    const whole = (await replayed(chatBodies.at(-1))).json.choices[0].message.content;
    assert.ok(stopped.length > 0 && stopped.length < whole.length && whole.startsWith(stopped),
              `stopped at [${stopped}], the whole reply is [${whole}]`);
    assert.equal(await errorShown(), null);
  });

  await check("an API error shows the server's message and takes the turn back", async () => {
    const refused = "This one asks for more tokens than a sequence holds.";
    await settings(100000, 0);
    await page.type("#prompt", refused);
    await page.click("#send");
    await page.waitForSelector("#error:not([hidden])");
    const whole = await replayed(chatBodies.at(-1));
    assert.equal(whole.status, 400);
    assert.equal(await errorShown(), whole.json.error.message);
    assert.equal((await userTexts()).length, 3);
    assert.equal((await assistantTexts()).length, 3);
    assert.equal(await page.$eval("#prompt", (box) => box.value), refused);
    assert.equal(await text("#model"), model);
  });

  await check("the page loaded nothing from elsewhere and threw nothing", async () => {
    assert.deepEqual(requestedURLs.filter((url) => !url.startsWith(`${baseURL}/`)), []);
    assert.deepEqual(pageErrors, []);
  });

  await check(`a screenshot in ${screenshotPath}`, async () => {
    mkdirSync(dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath });
    assert.ok(statSync(screenshotPath).size > 0);
  });
} finally {
  await browser.close();
}
console.log(`chat page: ${passed} passed, 0 failed`);
