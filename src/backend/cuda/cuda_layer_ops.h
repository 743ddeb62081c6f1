// The decoder layer's ops (model/decoder_layer.h) on one GPU: bf16 weights and activations, the
// residual stream in f32, keys and values in the layer's bf16 cache slots. A decode-shaped step
// (StepShape::gemv) runs every projection as one GEMV that absorbs its neighbours: the RMSNorm of
// its input, the bias, q/k rotation and cache store of q/k/v, SwiGLU of gate/up and the residual
// add. Other steps run cuBLASLt GEMMs, and a projection's output joins the residual stream in the
// next RMSNorm's kernel (GpuWorkspace::pending_add). A sparse layer's MLP routes on the device and
// runs only the chosen experts (ops/cuda/moe_routing.h, ops/cuda/expert_mlp.h), with no host sync,
// so a decode step stays one CUDA graph; experts kept in cpu memory (--cpu-moe) are the exception:
// the CPU runs them, between a copy out and a copy back.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/gpu_layer.h"
#include "backend/cuda/gpu_workspace.h"
#include "backend/cuda/step_shape.h"
#include "core/cuda/device_communicator.h"
#include "io/model_config.h"

namespace shardlm::cuda {

// The input of a projection that reads the normalised residual stream: rows normalised already (a
// GEMM step), or nothing yet, and the norm's weight, which the GEMV applies as it reads the
// residual (decode).
struct NormedRows {
  const __nv_bfloat16* rows = nullptr;
  const __nv_bfloat16* fold_norm = nullptr;
};

// What routing leaves for the experts: the normalised rows they read (the routes themselves are in
// the workspace).
struct GpuRoutes {
  const __nv_bfloat16* rows = nullptr;
};

class CudaLayerOps {
 public:
  using Layer = GpuLayer;

  // `comm`: the tensor-parallel group (null without one).
  CudaLayerOps(const ModelConfig& config, float attention_scaling, DeviceCommunicator* comm, GpuWorkspace& gpu,
               const StepShape& step);

  NormedRows rms_norm(const __nv_bfloat16* weight);
  const __nv_bfloat16* qkv_rope(const NormedRows& normed, const GpuLayer& layer, int il);
  const __nv_bfloat16* attention(const __nv_bfloat16* queries, const GpuLayer& layer, int il);
  void add_projection(const __nv_bfloat16* input, const GpuLinear& projection);
  const __nv_bfloat16* gate_up_swiglu(const NormedRows& normed, const GpuLayer& layer);
  GpuRoutes route(const NormedRows& normed, const GpuMoe& moe);
  void add_experts(const NormedRows& normed, const GpuRoutes& routes, const GpuMoe& moe);

 private:
  // The experts this GPU holds, for the rows that chose them (grouped by route), weighted into out (f32).
  void add_device_experts(const GpuRoutes& routes, const GpuMoe& moe, float* out);
  // The chosen experts of a layer that keeps them in cpu memory: the rows and routes go to the host,
  // the CPU adds the experts' weighted outputs, and their sum joins the residual stream.
  void add_host_experts(const GpuRoutes& routes, const GpuMoe& moe);

  const ModelConfig& config_;
  float attention_scaling_;
  DeviceCommunicator* comm_;
  GpuWorkspace& gpu_;
  const StepShape& step_;
};

}  // namespace shardlm::cuda
