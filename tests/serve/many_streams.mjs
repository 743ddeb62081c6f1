// 1,024 streaming completions open at once against `shardlm serve` (loopback): every stream ends
// with [DONE] after its tokens, within a time bound. test_serve.sh watches the server's threads
// meanwhile. Usage: node many_streams.mjs BASE_URL MODEL API_KEY [STREAMS]
import assert from "node:assert/strict";

const [baseURL, model, apiKey, count = "1024"] = process.argv.slice(2);
const streams = Number(count);
const maxTokens = 4;
const started = Date.now();

async function stream(i) {
  const response = await fetch(`${baseURL}/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ model, prompt: `And it came to pass ${i}`, max_tokens: maxTokens, temperature: 0,
                           stream: true }),
  });
  assert.equal(response.status, 200, `stream ${i}`);
  const text = await response.text();
  const events = text.split("\n\n").filter((event) => event.startsWith("data: "));
  assert.equal(events.at(-1), "data: [DONE]", `stream ${i} ends with [DONE]`);
  const chunks = events.slice(0, -1).map((event) => JSON.parse(event.slice(6)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, "length", `stream ${i}`);
}

await Promise.all(Array.from({ length: streams }, (_, i) => stream(i)));
const seconds = (Date.now() - started) / 1000;
// A bound that catches a stall, not a speed target (those live in bench/): CI shares two cores.
assert.ok(seconds < 240, `${streams} streams took ${seconds} s`);
console.log(`many streams: ${streams} streams in ${seconds.toFixed(1)} s`);
console.log("many streams: 1 passed, 0 failed");
