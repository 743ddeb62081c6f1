"""Load test for an OpenAI-compatible completions server, in the style of vLLM's benchmark_serving:
N requests sent all at once or as Poisson arrivals, prompts of random token ids (fixed or drawn
lengths, an optional shared prefix), streamed with ignore_eos so every request generates its
output length; reports requests/s, output tokens/s, time to first token and inter-token latency
(mean, p50, p99) as JSON. Python's standard library only: the GPU machine has no package registry.

  python3 bench/bench_serve.py --url http://127.0.0.1:8000 --model llama3-8b --num-requests 500 \
      --input-len 202 --output-len 179 --vocab-size 128000 --output result.json
  python3 bench/bench_serve.py ... --request-rate 16          # Poisson arrivals, 16 requests/s
  python3 bench/bench_serve.py ... --shared-prefix-len 2000   # every prompt starts alike
"""
import argparse
import asyncio
import json
import random
import statistics
import time
import urllib.parse


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(values, scale=1000.0):
    """mean, p50 and p99 in milliseconds."""
    if not values:
        return {"mean": None, "p50": None, "p99": None}
    return {"mean": statistics.fmean(values) * scale, "p50": percentile(values, 0.5) * scale,
            "p99": percentile(values, 0.99) * scale}


async def one_request(url, body, api_key):
    """Sends one streamed completion; returns (ttft, token gaps, output tokens, e2e) or raises."""
    parsed = urllib.parse.urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port or 80)
    payload = json.dumps(body).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {parsed.hostname}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nAuthorization: Bearer {api_key}\r\nConnection: close\r\n\r\n")
    start = time.perf_counter()
    writer.write(head.encode() + payload)
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        rest = await reader.read()
        raise RuntimeError(f"{status.decode().strip()}: {rest.decode(errors='replace')[-300:]}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    token_times = []
    output_tokens = None
    while True:
        line = await reader.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if "error" in event:
            raise RuntimeError(event["error"]["message"])
        if event.get("usage"):
            output_tokens = event["usage"]["completion_tokens"]
        if any(choice.get("text") for choice in event.get("choices", [])):
            token_times.append(time.perf_counter())
    end = time.perf_counter()
    writer.close()
    if not token_times:
        raise RuntimeError("no token arrived")
    gaps = [b - a for a, b in zip(token_times, token_times[1:])]
    return token_times[0] - start, gaps, output_tokens or len(token_times), end - start


async def run(args):
    rng = random.Random(args.seed)
    def length(mean):
        low, high = int(mean * (1 - args.range_ratio)), int(mean * (1 + args.range_ratio))
        return max(1, rng.randint(low, high)) if args.range_ratio > 0 else mean
    # The prefix has a seed of its own when given, so runs can share a prefix and differ after it.
    prefix_rng = random.Random(args.prefix_seed) if args.prefix_seed is not None else rng
    prefix = [prefix_rng.randrange(args.first_id, args.vocab_size) for _ in range(args.shared_prefix_len)]
    requests = []
    for _ in range(args.num_requests):
        prompt = prefix + [rng.randrange(args.first_id, args.vocab_size) for _ in range(length(args.input_len))]
        requests.append({"model": args.model, "prompt": prompt, "max_tokens": length(args.output_len),
                         "temperature": 0, "ignore_eos": True, "stream": True,
                         "stream_options": {"include_usage": True}})
    results, errors = [], []

    async def send(body, delay):
        await asyncio.sleep(delay)
        try:
            results.append(await one_request(args.url, body, args.api_key))
        except Exception as error:  # reported, never hidden
            errors.append(str(error))

    delays, at = [], 0.0
    for _ in requests:
        delays.append(at)
        if args.request_rate != float("inf"):
            at += rng.expovariate(args.request_rate)
    start = time.perf_counter()
    await asyncio.gather(*(send(body, delay) for body, delay in zip(requests, delays)))
    duration = time.perf_counter() - start
    ttfts = [r[0] for r in results]
    gaps = [gap for r in results for gap in r[1]]
    tpots = [(r[3] - r[0]) / (r[2] - 1) for r in results if r[2] > 1]
    output_tokens = sum(r[2] for r in results)
    return {
        "num_requests": args.num_requests, "completed": len(results), "failed": len(errors),
        "errors": errors[:5], "request_rate": args.request_rate if args.request_rate != float("inf") else "inf",
        "input_len": args.input_len, "output_len": args.output_len, "shared_prefix_len": args.shared_prefix_len,
        "duration_s": duration, "requests_per_s": len(results) / duration,
        "output_tokens_per_s": output_tokens / duration, "output_tokens": output_tokens,
        "ttft_ms": summary(ttfts), "itl_ms": summary(gaps), "tpot_ms": summary(tpots),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--num-requests", type=int, default=500)
    parser.add_argument("--request-rate", type=float, default=float("inf"), help="Poisson arrivals per second (inf: all at once)")
    parser.add_argument("--input-len", type=int, default=202)
    parser.add_argument("--output-len", type=int, default=179)
    parser.add_argument("--range-ratio", type=float, default=0.0, help="draw lengths uniformly within +-this share")
    parser.add_argument("--shared-prefix-len", type=int, default=0, help="tokens every prompt starts with")
    parser.add_argument("--vocab-size", type=int, required=True, help="prompt ids are drawn below this")
    parser.add_argument("--first-id", type=int, default=1000, help="prompt ids are drawn from here (past special tokens)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix-seed", type=int, help="draw the shared prefix from this seed (default: --seed)")
    parser.add_argument("--output", help="write the JSON result here too")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
