// RMSNorm kernel. Rows are independent, so the row loop is the parallel one; the weight is widened
// once per call because it is tiny next to the activations.
#include "ops/cpu/rmsnorm.h"

#include <cmath>
#include <vector>

namespace shardlm::cpu {

void rmsnorm(const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps, float* out) {
  std::vector<float> gamma(static_cast<size_t>(dim));
  weight.row_to_f32(0, 0, dim, gamma.data());
#pragma omp parallel for schedule(static) if (rows * dim > 65536)
  for (int64_t row = 0; row < rows; ++row) {
    const float* in = x + row * dim;
    float* result = out + row * dim;
    double sum_squares = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_squares += double(in[i]) * double(in[i]);
    const float inverse_rms = 1.0f / std::sqrt(float(sum_squares / double(dim)) + eps);
    for (int64_t i = 0; i < dim; ++i) result[i] = gamma[size_t(i)] * (in[i] * inverse_rms);
  }
}

}  // namespace shardlm::cpu
