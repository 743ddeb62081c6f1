// Test support: greedy decoding under penalties and logit bias, two ways on one Engine. Through the
// engine's own bookkeeping (SamplingParams), and as an oracle that takes each step's raw logits from
// an unpenalised sequence and applies OpenAI's and Transformers' definitions itself from the token
// history, written out here rather than through ops/logit_penalties.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace shardlm {

// A prompt that repeats tokens, so that penalties bite from the start.
inline std::vector<int32_t> repeating_prompt() {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 7) % 23 + 100);
  return tokens;
}

// A bias that makes token 321 the greedy choice until its count in the output, through the
// frequency and presence penalties, outweighs it: the penalties then decide every step.
inline SamplingParams strongly_penalised() {
  SamplingParams sampling;
  sampling.repetition_penalty = 1.1f;
  sampling.frequency_penalty = 0.4f;
  sampling.presence_penalty = 0.5f;
  sampling.logit_bias = {{321, 6.0f}};
  return sampling;
}

// What the prefix cache holds of the prompt, the rest in chunks of `chunk` tokens (0: one chunk),
// then n tokens one step each.
inline std::vector<int32_t> penalised_greedy(Engine& engine, const std::vector<int32_t>& prompt,
                                             const SamplingParams& sampling, int n, size_t chunk = 0) {
  const int id = engine.add_sequence(sampling);
  const size_t cached = size_t(engine.reuse_prefix(id, prompt));
  if (chunk == 0) chunk = prompt.size();
  std::vector<int32_t> out;
  for (size_t first = cached; first < prompt.size(); first += chunk) {
    const size_t end = std::min(prompt.size(), first + chunk);
    const std::span<const int32_t> tokens = std::span(prompt).subspan(first, end - first);
    const std::vector<int32_t> sampled = engine.step(std::vector<SequenceChunk>{{id, tokens, end == prompt.size()}});
    if (end == prompt.size()) out.push_back(sampled.at(0));
  }
  while (int(out.size()) < n) {
    const std::vector<int32_t> next = {out.back()};
    out.push_back(engine.step(std::vector<SequenceChunk>{{id, next, true}}).at(0));
  }
  engine.remove_sequence(id);
  return out;
}

// margins, when given, receives each step's top1 - top2 penalised logit (a near tie is where a GPU's
// decode and prompt paths, which round differently, may part).
inline std::vector<int32_t> oracle_penalised_greedy(Engine& engine, const std::vector<int32_t>& prompt,
                                                    const SamplingParams& sampling, int n,
                                                    std::vector<float>* margins = nullptr) {
  const int id = engine.add_sequence(SamplingParams{});
  std::vector<int32_t> out, input = prompt;
  while (int(out.size()) < n) {
    std::vector<float> logits = engine.step_logits(std::vector<SequenceChunk>{{id, input, true}});
    for (const TokenBias& entry : sampling.logit_bias) logits[size_t(entry.token)] += entry.bias;
    for (size_t token = 0; token < logits.size(); ++token) {
      const auto count = std::count(out.begin(), out.end(), int32_t(token));
      const bool in_prompt = std::find(prompt.begin(), prompt.end(), int32_t(token)) != prompt.end();
      float& logit = logits[token];
      if (in_prompt || count > 0)
        logit = logit > 0 ? logit / sampling.repetition_penalty : logit * sampling.repetition_penalty;
      logit -= sampling.frequency_penalty * float(count) + (count > 0 ? sampling.presence_penalty : 0.0f);
    }
    out.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    if (margins) {
      const float best = logits[size_t(out.back())];
      logits[size_t(out.back())] = -INFINITY;
      margins->push_back(best - *std::max_element(logits.begin(), logits.end()));
    }
    input = {out.back()};
  }
  engine.remove_sequence(id);
  return out;
}

// The log-probability of `token` after `prompt` under the raw logits (of an unpenalised sequence).
inline double raw_logprob(Engine& engine, const std::vector<int32_t>& prompt, int32_t token) {
  const int id = engine.add_sequence(SamplingParams{});
  const std::vector<float> logits = engine.step_logits(std::vector<SequenceChunk>{{id, prompt, true}});
  engine.remove_sequence(id);
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(double(logit) - max_logit);
  return double(logits[size_t(token)]) - max_logit - std::log(sum);
}

// A sequence's first token under `sampling` (which asks for logprobs) and its reported log-probability.
inline std::pair<int32_t, double> first_token_and_logprob(Engine& engine, const std::vector<int32_t>& prompt,
                                                          const SamplingParams& sampling) {
  const int id = engine.add_sequence(sampling);
  const int32_t token = engine.step(std::vector<SequenceChunk>{{id, prompt, true}}).at(0);
  const double logprob = engine.last_logprobs().at(0)->logprob;
  engine.remove_sequence(id);
  return {token, logprob};
}

}  // namespace shardlm
