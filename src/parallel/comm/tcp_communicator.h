// Host collectives between processes over TCP, for CPU ranks started by `shardlm launch`,
// torchrun, Slurm or mpirun (and, on GPUs, the rendezvous that will carry NCCL's unique id). Rank 0
// listens on MASTER_ADDR:MASTER_PORT and every other rank connects to it: a star. Each collective
// sends every rank's contribution to rank 0, which sums in rank order (as the thread group does)
// and sends the result back, so all ranks receive the same bytes. Rank 0 carries n times the
// traffic of a ring; this backend exists so that multi-process TP runs and is tested in CI, and
// NCCL is the fast path.
//
// Every frame carries the collective's kind, sequence number, count, dtype and root, and rank 0
// checks them, so ranks that disagree get an error instead of garbage. A rank that fails sends its
// reason (abort()) and rank 0 relays it, so every rank throws Error with the first failing rank's
// message; a rank that dies is noticed by its closed socket, one that hangs by the timeout.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "parallel/comm/socket.h"

namespace shardlm {

struct TcpOptions {
  int rank = 0;
  int size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  CommOptions comm;
};

class TcpCommunicator final : public Communicator {
 public:
  // Blocks until all `size` ranks have joined (rank 0 accepting, the others connecting), or throws
  // Error after options.comm.timeout naming the ranks that did not.
  static std::unique_ptr<TcpCommunicator> connect(const TcpOptions& options);
  ~TcpCommunicator() override;

  int rank() const override { return options_.rank; }
  int size() const override { return options_.size; }
  // Tells the group why this rank stops (sent to rank 0, which relays it to all), then shuts its connections down.
  void abort(const std::string& reason) override;

 protected:
  void do_all_reduce_sum(void* data, size_t count, DType dtype) override;
  void do_all_gather(const void* send, void* recv, size_t count, DType dtype) override;
  void do_reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) override;
  void do_broadcast(void* data, size_t count, DType dtype, int root) override;
  void do_barrier() override;

 private:
  struct Call;
  struct Frame;
  explicit TcpCommunicator(TcpOptions options);

  // One rank's contribution arriving at rank 0 (header checked against rank 0's own call), and
  // rank 0's answer arriving at another rank.
  void expect_up(int peer, const Call& call, void* data, size_t bytes);
  void expect_down(const Call& call, void* data, size_t bytes);

  void send_frame(int peer, const Frame& frame, const void* payload, const Call& call);
  Frame recv_frame(int peer, const Call& call, std::chrono::milliseconds timeout);
  void recv_payload(int peer, void* data, size_t bytes, const Call& call);
  // The reason a closed peer sent before closing, or "" if it sent none.
  std::string error_left_by(int peer);
  // Ranks other than 0 allow rank 0 twice the timeout to answer, so that when some rank is late,
  // rank 0 (which knows which one) times out first and names it.
  std::chrono::milliseconds answer_timeout() const;
  [[noreturn]] void fail_transfer(int peer, const SocketFailure& failure, const Call& call);
  // Ends the group: tells the other side why (best effort), shuts every connection down, throws.
  [[noreturn]] void fail_group(const std::string& reason);
  void check_usable();

  TcpOptions options_;
  std::vector<Socket> peers_;  // rank 0: index r is rank r (index 0 unused); other ranks: index 0 is rank 0
  uint64_t sequence_ = 0;
  std::mutex collective_mutex_;  // held during a collective, so abort() knows whether it may send
  std::mutex failure_mutex_;
  std::string failure_;           // set once the group is dead: every later call throws it
  std::atomic<bool> failed_{false};
};

}  // namespace shardlm
