// Shard views on the real test checkpoints: for every fixture model and tp in {1, 2, 4}, the auto
// plan resolves from the safetensors header alone, every rank's views point at exactly the
// elements its slice names (checked element by element against the whole stored tensor), and the
// ranks' slices together cover every element once (or n_copies times for replicated KV heads).
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "plan/tp_plan.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> model_dirs() {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(fs::path(SHARDLM_FIXTURES_DIR) / "models")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// Element (row, col) of the whole stored tensor equals element (i, j) of a view: compared as bytes,
// so the check is the same for every dtype.
void expect_view_matches(const TpWeight& weight, const TensorSlice& slice, const SliceSegment& segment,
                         const ShardView& view, const TensorInfo& source) {
  const size_t element = dtype_size(weight.dtype);
  const int64_t cols = weight.shape.back();
  const bool one_d = weight.shape.size() == 1;
  for (int64_t i = 0; i < view.rows; ++i) {
    for (int64_t j = 0; j < view.cols; ++j) {
      int64_t row = i, col = j;
      if (one_d) {
        col += segment.offset;
      } else if (slice.dim == 0) {
        row += segment.offset;
      } else {
        col += segment.offset;
      }
      const std::byte* expected = source.data + size_t(row * cols + col) * element;
      const std::byte* actual = view.data + size_t(i * view.row_stride + j) * element;
      ASSERT_EQ(std::memcmp(expected, actual, element), 0) << weight.name << " (" << row << ", " << col << ")";
    }
  }
}

TEST(TpPlanViews, FixtureShardsMapExactlyTheirElements) {
  for (const fs::path& dir : model_dirs()) {
    SCOPED_TRACE(dir.filename().string());
    const ModelConfig config = ModelConfig::from_dir(dir);
    const Checkpoint checkpoint = Checkpoint::open(dir);
    for (int tp : {1, 2, 4}) {
      SCOPED_TRACE("tp=" + std::to_string(tp));
      const TpPlan plan = resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), tp);
      for (const TpWeight& weight : plan.weights()) {
        const TensorInfo& source = checkpoint.get(weight.source_name);
        const int split_dim = weight.slices[0].dim;
        std::vector<int> coverage(split_dim < 0 ? 0 : size_t(weight.shape[size_t(split_dim)]), 0);
        for (int rank = 0; rank < tp; ++rank) {
          const TensorSlice& slice = weight.slices[size_t(rank)];
          const std::vector<ShardView> views = shard_views(weight, rank, source);
          if (slice.whole()) {
            ASSERT_EQ(views.size(), 1u);
            EXPECT_EQ(views[0].data, source.data);
            continue;
          }
          ASSERT_EQ(views.size(), slice.segments.size()) << weight.name;
          int64_t local = 0;
          for (size_t s = 0; s < views.size(); ++s) {
            const SliceSegment& segment = slice.segments[s];
            expect_view_matches(weight, slice, segment, views[s], source);
            for (int64_t i = segment.offset; i < segment.offset + segment.length; ++i) coverage[size_t(i)] += 1;
            local += segment.length;
          }
          EXPECT_EQ(slice.local_shape[size_t(slice.dim)], local);
        }
        // Every element is read, and by exactly as many ranks as its segments advertise.
        for (size_t i = 0; i < coverage.size(); ++i) ASSERT_GE(coverage[i], 1) << weight.name << " element " << i << " unread";
        for (const TensorSlice& slice : weight.slices) {
          for (const SliceSegment& segment : slice.segments) {
            for (int64_t i = segment.offset; i < segment.offset + segment.length; ++i) {
              ASSERT_EQ(coverage[size_t(i)], segment.n_copies) << weight.name << " element " << i;
            }
          }
        }
      }
    }
  }
}

TEST(TpPlanViews, TiedHeadViewsPointIntoTheEmbedding) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-tied-linear-bf16";
  const ModelConfig config = ModelConfig::from_dir(dir);
  ASSERT_TRUE(config.tie_word_embeddings);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const TpPlan plan = resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), 2);
  const TpWeight& head = plan.weight("lm_head.weight");
  const TensorInfo& embedding = checkpoint.get("model.embed_tokens.weight");
  const std::vector<ShardView> rank1 = shard_views(head, 1, embedding);
  ASSERT_EQ(rank1.size(), 1u);
  EXPECT_EQ(rank1[0].data, embedding.data + size_t(358 * 64) * 2);  // vocabulary 715: rows 358.. on rank 1
  EXPECT_EQ(rank1[0].rows, 357);
  EXPECT_THROW(shard_views(head, 1, checkpoint.get("model.norm.weight")), Error);
}

TEST(TpPlanViews, RowwiseViewsUseTheFullRowStride) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "qwen3-qknorm-f32";
  const ModelConfig config = ModelConfig::from_dir(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const TpPlan plan = resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), 2);
  const TpWeight& down = plan.weight("model.layers.1.mlp.down_proj.weight");  // [64, 128]
  const std::vector<ShardView> views = shard_views(down, 1, checkpoint.get(down.source_name));
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].rows, 64);
  EXPECT_EQ(views[0].cols, 64);
  EXPECT_EQ(views[0].row_stride, 128);
  EXPECT_FALSE(views[0].contiguous());
  const std::vector<ShardView> up = shard_views(plan.weight("model.layers.1.mlp.up_proj.weight"), 1,
                                                checkpoint.get("model.layers.1.mlp.up_proj.weight"));
  EXPECT_TRUE(up[0].contiguous());
}

TEST(TpPlanViews, DefaultModelSplitsOverTwoRanksButNotThree) {
  const fs::path dir = fs::path(SHARDLM_SOURCE_DIR) / "models" / "kjv-llama";  // 6 query heads, 2 KV heads
  const ModelConfig config = ModelConfig::from_dir(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  EXPECT_NO_THROW(resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), 2));
  try {
    resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), 3);
    ADD_FAILURE() << "tp=3 must be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("splits 2 KV heads over tp=3"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace shardlm
