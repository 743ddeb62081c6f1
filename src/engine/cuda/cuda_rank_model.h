// A rank on a GPU: the CUDA model (whole, on a device map, or one tensor-parallel rank's slices
// with its NCCL communicator and, where every GPU of the group reaches the others, the one-shot
// peer all-reduce for decode's small messages; ranks that share a GPU, which NCCL refuses, go
// through host memory instead). Sampling happens on the device.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "backend/cuda/cuda_llama_model.h"
#include "engine/rank_model.h"
#include "parallel/cuda/host_staged_communicator.h"
#include "parallel/cuda/nccl_communicator.h"
#include "parallel/cuda/peer_communicator.h"

namespace shardlm::cuda {

// The NCCL communicators of the ranks in this process: a rank that fails aborts them all, so that
// none waits forever in a collective the failed rank will never join.
class NcclAbortList {
 public:
  void add(NcclCommunicator* comm);
  void remove(NcclCommunicator* comm);
  void abort_all();

 private:
  std::mutex mutex_;
  std::vector<NcclCommunicator*> comms_;
};

struct CudaRankSetup {
  CudaModelOptions options;  // device, KV-cache size, device map
  // Random weights (the constructor's checkpoint is null): filled on the device from this seed.
  uint64_t random_seed = 0;
  // Tensor parallelism: this rank's plan and host communicator (its rank and size are the group's).
  const TpPlan* plan = nullptr;
  Communicator* host = nullptr;
  bool peer_all_reduce = false;        // the group's GPUs all reach each other's memory
  bool gpus_shared = false;            // some ranks of the group run on one GPU: no NCCL
  NcclAbortList* abort_list = nullptr;  // ranks in this process register here
};

class CudaRankModel final : public RankModel {
 public:
  // A null checkpoint: random weights of the config's shape (setup.random_seed).
  CudaRankModel(const ModelConfig& config, std::shared_ptr<const Checkpoint> checkpoint, const CudaRankSetup& setup);
  ~CudaRankModel() override;

  const ModelConfig& config() const override { return model_->config(); }
  int max_sequences() const override { return model_->max_sequences(); }
  int64_t max_seq_len() const override { return model_->max_seq_len(); }
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, std::span<const SamplingParams> sampling,
                                      std::span<const LogitPenalties> penalties) override;
  const std::vector<std::optional<SampledLogprobs>>& last_logprobs() const override { return model_->last_logprobs(); }
  std::vector<float> forward_logits(std::span<const TokenRow> rows) override { return model_->forward_logits(rows); }
  int kv_blocks() const override { return model_->kv_shape().num_blocks; }
  void update_kv_blocks(std::span<const KvBlockUpdate> updates) override { model_->update_kv_blocks(updates); }
  // Random streams follow from the seed, slot and position on the device: nothing to reset.
  void reset_slot(int) override {}
  std::string load_summary() const override;
  RankReport report() const override;

  const CudaLlamaModel& model() const { return *model_; }

 private:
  NcclAbortList* abort_list_ = nullptr;
  std::optional<NcclCommunicator> nccl_;
  std::optional<HostStagedCommunicator> host_staged_;
  std::optional<PeerCommunicator> peer_;
  std::unique_ptr<CudaLlamaModel> model_;
};

// Whether every pair of these devices reaches the other's memory directly.
bool peer_access_everywhere(std::span<const int> devices);

}  // namespace shardlm::cuda
