// A resolved tensor-parallel plan: for every weight of one model, its strategy, its placement over
// the "tp" mesh dimension, and for every rank the slice of the stored tensor that rank reads. The
// plan is computed from the checkpoint's header (names, shapes, dtypes) and config.json alone and
// is fully validated before any weight byte is touched, so a bad plan fails in milliseconds with a
// message naming the module and the numbers. Ranks then map only their own slices out of the
// memory-mapped safetensors (shard_views), so no rank materialises the whole model.
//
// Slices are along one tensor dimension: dim 0 (a colwise weight's rows, a bias, a vocabulary
// range) is one contiguous byte range per segment; dim 1 (a rowwise weight's columns) is a column
// range that the model reads with the full row stride. Fused weights (qkv_proj, gate_up_proj) have
// one segment per component, concatenated in order in the rank's local tensor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "plan/placement.h"
#include "plan/tp_plan_source.h"
#include "plan/tp_plan_strategy.h"

namespace shardlm {

// What the plan needs to know of a stored tensor; from the safetensors header, no data.
struct WeightSpec {
  std::string name;            // exact HF name
  std::vector<int64_t> shape;  // as stored: linear weights are [out_features, in_features]
  DType dtype = DType::F32;
};

std::vector<WeightSpec> weight_specs(const Checkpoint& checkpoint);
// The tensors a checkpoint with this config would hold (llama_tensor_shapes), all in `dtype`: a
// --random shape's, which has no checkpoint.
std::vector<WeightSpec> weight_specs(const ModelConfig& config, DType dtype);

struct SliceSegment {
  int64_t offset = 0;  // along TensorSlice::dim, in elements of that dimension
  int64_t length = 0;
  // Ranks holding exactly this segment: 1 for a proper shard, tp / n_kv_heads for a replicated KV
  // head, which every rank holding one of its query heads needs).
  int n_copies = 1;
};

// One rank's part of one weight.
struct TensorSlice {
  int dim = -1;                         // tensor dimension that is split; -1: the whole tensor
  std::vector<SliceSegment> segments;   // empty when whole
  std::vector<int64_t> local_shape;     // the rank's tensor: segments concatenated along dim
  // Uneven splits (only where the output is gathered or summed back, e.g. a vocabulary that tp
  // does not divide) give every rank ceil(n / tp) rows except the last ones: `block` is that
  // padded length, the all-gather block size. Equal to the local length for even splits.
  int64_t block = 0;
  // Expert parallelism (grouped_gemm): an expert's weights are whole on the rank that holds the
  // expert and absent (held false, no elements) on every other rank.
  bool held = true;

  bool whole() const { return dim < 0 && held; }
  int64_t numel() const;
};

struct TpWeight {
  std::string name;         // e.g. "model.layers.0.self_attn.k_proj.weight"
  std::string source_name;  // the checkpoint tensor holding its bytes; differs only for a tied lm_head
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  TpStrategy strategy = TpStrategy::REPLICATE;
  std::string strategy_name;     // as written in the plan ("replicate" when no entry matched)
  std::string pattern;           // the matching plan entry; empty: not in the plan, replicated
  Placement placement;           // Shard(0), Shard(1) or Replicate()
  std::vector<TensorSlice> slices;  // indexed by rank within the tp group

  bool in_plan() const { return !pattern.empty(); }
};

// Module-level entries (all_reduce): a parent module whose output the model must all-reduce.
struct TpModule {
  std::string name;  // e.g. "model.layers.0.mlp"
  TpStrategy strategy = TpStrategy::ALL_REDUCE;
  std::string strategy_name;
  std::string pattern;
};

class TpPlan {
 public:
  int tp_size() const { return tp_size_; }
  const std::string& origin() const { return origin_; }
  const std::vector<TpWeight>& weights() const { return weights_; }
  const std::vector<TpModule>& modules() const { return modules_; }

  const TpWeight* find(const std::string& name) const;
  const TpWeight& weight(const std::string& name) const;  // throws Error for a name not in the model
  const TensorSlice& slice(const std::string& name, int rank) const;

 private:
  friend TpPlan resolve_tp_plan(const ModelConfig&, const std::vector<WeightSpec>&, const TpPlanSource&, int);
  int tp_size_ = 1;
  std::string origin_;
  std::vector<TpWeight> weights_;
  std::vector<TpModule> modules_;
};

// Validates `source` against the model and computes every rank's slices. Patterns use '*' for a
// layer number, as Transformers matches them (a key names a parameter or the module owning it; the
// leading "model." may be left out). Weights no entry matches are replicated, as in Transformers.
// A tied lm_head (no lm_head.weight in the checkpoint) is planned as the weight "lm_head.weight"
// read from model.embed_tokens.weight. Errors, all before any weight is read: an unknown strategy;
// a pattern matching no module; a module matched by two patterns; a split that tp does not divide
// (heads, rows or columns) or experts; a weight whose shape disagrees with config.json. Plans for
// mixture-of-experts layers may name the experts fused, as Transformers 5 does
// (plan/expert_plan_entries.h).
TpPlan resolve_tp_plan(const ModelConfig& config, const std::vector<WeightSpec>& weights, const TpPlanSource& source,
                       int tp_size);

// A 2-D window into a stored tensor: rows x cols elements, consecutive rows row_stride elements
// apart (row_stride == cols when contiguous). 1-D tensors are one row.
struct ShardView {
  DType dtype = DType::F32;
  const std::byte* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;

  bool contiguous() const { return row_stride == cols || rows == 1; }
};

// The windows of `rank`'s slice of `weight`, one per segment (one for a whole tensor), pointing
// into `source` (checkpoint.get(weight.source_name)). Nothing is copied.
std::vector<ShardView> shard_views(const TpWeight& weight, int rank, const TensorInfo& source);

}  // namespace shardlm
