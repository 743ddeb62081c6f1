// The GPU rank's collectives: NCCL (CUDA graphs capture it), with the peer all-reduce in front of
// it where the GPUs reach each other; ranks in different processes cannot share the peer kernel's
// pointers, so their launcher leaves it off. Ranks sharing a GPU, which NCCL refuses, stage every
// collective through host memory and run without graphs.
#include "engine/cuda/cuda_rank_model.h"

#include <fmt/core.h>

#include <algorithm>

#include "backend/cuda/device_query.h"
#include "core/error.h"

namespace shardlm::cuda {

void NcclAbortList::add(NcclCommunicator* comm) {
  const std::lock_guard lock(mutex_);
  comms_.push_back(comm);
}

void NcclAbortList::remove(NcclCommunicator* comm) {
  const std::lock_guard lock(mutex_);
  comms_.erase(std::remove(comms_.begin(), comms_.end(), comm), comms_.end());
}

void NcclAbortList::abort_all() {
  const std::lock_guard lock(mutex_);
  for (NcclCommunicator* comm : comms_) comm->abort();
}

CudaRankModel::CudaRankModel(const ModelConfig& config, std::shared_ptr<const Checkpoint> checkpoint,
                             const CudaRankSetup& setup)
    : abort_list_(setup.abort_list) {
  CudaModelOptions options = setup.options;
  if (setup.plan && setup.gpus_shared) {
    host_staged_.emplace(*setup.host);
    options.tensor_parallel = CudaTensorParallel{setup.plan, &*host_staged_};
  } else if (setup.plan) {
    nccl_.emplace(*setup.host, options.device);
    if (abort_list_) abort_list_->add(&*nccl_);
    if (setup.peer_all_reduce) peer_.emplace(*setup.host, options.device, *nccl_);
    options.tensor_parallel =
        CudaTensorParallel{setup.plan, peer_ ? static_cast<DeviceCommunicator*>(&*peer_) : &*nccl_};
  }
  try {
    model_ = checkpoint ? std::make_unique<CudaLlamaModel>(config, std::move(checkpoint), options)
                        : std::make_unique<CudaLlamaModel>(config, setup.random_seed, options);
  } catch (...) {
    if (abort_list_ && nccl_) abort_list_->remove(&*nccl_);
    throw;
  }
}

CudaRankModel::~CudaRankModel() {
  if (abort_list_ && nccl_) abort_list_->remove(&*nccl_);
}

std::vector<int32_t> CudaRankModel::forward_sample(std::span<const TokenRow> rows,
                                                   std::span<const SamplingParams> sampling,
                                                   std::span<const LogitPenalties> penalties) {
  if (sampling.empty()) return model_->forward_sample(rows, SamplingParams{});
  return model_->forward_sample(rows, sampling, penalties);
}

std::string CudaRankModel::load_summary() const {
  const LoadReport& report = model_->load_report();
  std::string summary = fmt::format("loaded {:.2f} GB in {:.2f} s ({:.1f} GB/s)", report.bytes / 1e9, report.seconds,
                                    report.bytes / 1e9 / report.seconds);
  const OffloadReport& offload = model_->offload_report();
  if (offload.speeds.offloaded_bytes > 0)
    summary += fmt::format("; offloaded {:.2f} GB ({}): host-to-device {:.1f} GB/s, CPU reads {:.1f} GB/s",
                           offload.speeds.offloaded_bytes / 1e9, offload_exec_name(offload.exec),
                           offload.speeds.host_to_device_gbps, offload.speeds.cpu_read_gbps);
  return summary;
}

RankReport CudaRankModel::report() const {
  RankReport report;
  report.load_seconds = model_->load_report().seconds;
  report.load_bytes = model_->load_report().bytes;
  report.device_memory_used = model_->device_memory_used();
  if (model_->offload_report().speeds.offloaded_bytes > 0) report.offload = model_->offload_report();
  report.host_experts = model_->host_expert_times();
  return report;
}

bool peer_access_everywhere(std::span<const int> devices) {
  for (const int a : devices)
    for (const int b : devices)
      if (a != b && !can_access_peer(a, b)) return false;
  return true;
}

}  // namespace shardlm::cuda
