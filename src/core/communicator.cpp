// Argument checks shared by every backend, so a null buffer or a root outside the group fails the
// same way (and on the calling rank, before any peer waits on it) whatever the backend.
#include "core/communicator.h"

#include "core/error.h"

namespace shardlm {
namespace {

void check_buffer(const void* buffer, size_t count, const char* what, const char* op) {
  if (buffer == nullptr && count > 0) fail("{}: {} is null for {} elements", op, what, count);
}

}  // namespace

void Communicator::all_reduce_sum(void* data, size_t count, DType dtype) {
  check_buffer(data, count, "data", "all_reduce_sum");
  do_all_reduce_sum(data, count, dtype);
}

void Communicator::all_gather(const void* send, void* recv, size_t count, DType dtype) {
  check_buffer(send, count, "send", "all_gather");
  check_buffer(recv, count, "recv", "all_gather");
  do_all_gather(send, recv, count, dtype);
}

void Communicator::reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) {
  check_buffer(send, count, "send", "reduce_scatter_sum");
  check_buffer(recv, count, "recv", "reduce_scatter_sum");
  do_reduce_scatter_sum(send, recv, count, dtype);
}

void Communicator::broadcast(void* data, size_t count, DType dtype, int root) {
  check_buffer(data, count, "data", "broadcast");
  if (root < 0 || root >= size()) fail("broadcast: root {} is outside a group of {} ranks", root, size());
  do_broadcast(data, count, dtype, root);
}

void Communicator::barrier() { do_barrier(); }

}  // namespace shardlm
