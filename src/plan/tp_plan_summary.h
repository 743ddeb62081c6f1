// What `shardlm plan --tp N` shows: every kind of weight (the name with layer numbers as '*') with
// its strategy, full shape and each rank's shard shape, the bytes every rank maps, what stays
// replicated, and the collectives one forward pass needs. Computed from a TpPlan, no weights read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/tp_plan.h"

namespace shardlm {

struct TpSummaryRow {
  std::string kind;            // e.g. "model.layers.*.self_attn.k_proj.weight"
  int n_weights = 0;           // weights of this kind (one per layer)
  std::string strategy;        // as written in the plan
  bool in_plan = false;        // false: no entry matched, replicated by default
  Placement placement;
  std::vector<int64_t> shape;        // full, as stored
  std::vector<int64_t> rank0_shape;  // rank 0's shard
  bool uneven = false;               // some rank's shard is shorter (padded vocabulary split)
  bool by_expert = false;            // expert parallelism: each weight whole on one rank, absent on the others
  int n_copies = 1;                  // ranks holding the same elements (KV-head replication; tp when replicated)
  std::string source_name;           // the stored tensor, when it is not the weight itself (tied lm_head)
  std::vector<int64_t> bytes_per_rank;  // all weights of this kind
};

struct TpSummary {
  int tp_size = 1;
  std::string origin;  // "auto" or the plan file
  std::vector<TpSummaryRow> rows;
  std::vector<int64_t> bytes_per_rank;  // distinct stored bytes each rank maps (a tied head is not counted twice)
  int64_t model_bytes = 0;              // every stored tensor once
  int64_t replicated_bytes = 0;         // of bytes_per_rank, held whole by every rank
  int all_reduces_per_forward = 0;      // modules whose output is all-reduced
  int all_gathers_per_forward = 0;
};

TpSummary summarize_tp_plan(const TpPlan& plan);
std::string format_tp_summary(const TpSummary& summary);

}  // namespace shardlm
