// The star protocol. A collective is two exchanges: "up", where every rank but 0 sends one frame
// (header + its contribution) and rank 0 reads them in rank order, and "down", where rank 0 sends
// each rank one frame with its result. Rank 0 validates every up header against its own call, and
// while it waits for one rank it watches the others' sockets, so a rank that dies is noticed at
// once even if an earlier rank is slow. Frames are in host byte order: ranks run the same binary.
#include "parallel/comm/tcp_communicator.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "parallel/comm/host_reduce.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kFrameMagic = 0x4d4c5353;  // "SSLM"
// Error frames are sent on the way out; a peer that does not read them must not hold us up.
constexpr milliseconds kErrorSendTimeout{200};
constexpr uint64_t kMaxErrorText = 64 * 1024;

enum class FrameKind : uint32_t { HELLO = 1, WELCOME, READY, ERROR, ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, BROADCAST, BARRIER };

std::string_view kind_name(uint32_t kind) {
  switch (FrameKind(kind)) {
    case FrameKind::HELLO: return "hello";
    case FrameKind::WELCOME: return "welcome";
    case FrameKind::READY: return "ready";
    case FrameKind::ERROR: return "error";
    case FrameKind::ALL_REDUCE: return "all_reduce_sum";
    case FrameKind::ALL_GATHER: return "all_gather";
    case FrameKind::REDUCE_SCATTER: return "reduce_scatter_sum";
    case FrameKind::BROADCAST: return "broadcast";
    case FrameKind::BARRIER: return "barrier";
  }
  return "unknown frame";
}

std::string format_duration(milliseconds duration) {
  if (duration.count() < 1000) return fmt::format("{} ms", duration.count());
  return fmt::format("{:.1f} s", double(duration.count()) / 1000.0);
}

}  // namespace

struct TcpCommunicator::Frame {
  uint32_t magic = kFrameMagic;
  uint32_t kind = 0;
  uint64_t sequence = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;  // payload following the header
  int32_t root = -1;
  uint32_t dtype = 0;
};

struct TcpCommunicator::Call {
  FrameKind kind;
  size_t count = 0;
  DType dtype = DType::F32;
  int root = -1;
  uint64_t sequence = 0;

  Frame frame(uint64_t bytes) const { return {kFrameMagic, uint32_t(kind), sequence, count, bytes, root, uint32_t(dtype)}; }
  bool matches(const Frame& frame) const {
    return frame.kind == uint32_t(kind) && frame.sequence == sequence && frame.count == count && frame.root == root &&
           frame.dtype == uint32_t(dtype);
  }
  std::string describe() const { return describe(frame(0)); }
  static std::string describe(const Frame& frame) {
    const std::string_view name = kind_name(frame.kind);
    if (FrameKind(frame.kind) == FrameKind::BARRIER) return fmt::format("barrier() #{}", frame.sequence);
    if (frame.dtype > uint32_t(DType::BF16)) return fmt::format("{} #{}", name, frame.sequence);
    const std::string_view dtype = dtype_name(DType(frame.dtype));
    if (frame.root >= 0) return fmt::format("{}({} x {}, root {}) #{}", name, frame.count, dtype, frame.root, frame.sequence);
    return fmt::format("{}({} x {}) #{}", name, frame.count, dtype, frame.sequence);
  }
};

TcpCommunicator::TcpCommunicator(TcpOptions options) : options_(std::move(options)) {}

TcpCommunicator::~TcpCommunicator() = default;

std::unique_ptr<TcpCommunicator> TcpCommunicator::connect(const TcpOptions& options) {
  if (options.size < 1) fail("process group: world size {} must be at least 1", options.size);
  if (options.rank < 0 || options.rank >= options.size) {
    fail("process group: rank {} is outside a world of {} ranks", options.rank, options.size);
  }
  if (options.master_port < 1 || options.master_port > 65535) fail("process group: master port {} is not a TCP port", options.master_port);
  std::unique_ptr<TcpCommunicator> comm(new TcpCommunicator(options));
  if (options.size == 1) return comm;

  const Call rendezvous{FrameKind::HELLO};
  const auto deadline = Clock::now() + options.comm.timeout;
  const std::string where = fmt::format("{}:{}", options.master_addr, options.master_port);
  SocketFailure failure;
  if (options.rank == 0) {
    const Socket listener = listen_on(options.master_addr, options.master_port);
    comm->peers_.resize(size_t(options.size));
    for (int joined = 0; joined < options.size - 1;) {
      Socket socket = accept_until(listener, deadline);
      if (!socket.valid()) {
        std::vector<int> missing;
        for (int rank = 1; rank < options.size; ++rank) {
          if (!comm->peers_[size_t(rank)].valid()) missing.push_back(rank);
        }
        comm->fail_group(fmt::format("rendezvous at {}: {} of {} ranks joined within {}; missing rank(s) {}", where,
                                     joined + 1, options.size, format_duration(options.comm.timeout), fmt::join(missing, ", ")));
      }
      Frame hello;
      // Anything that does not greet like a shardlm rank (a port scanner, a stale client) is dropped.
      if (!recv_all(socket, &hello, sizeof(hello), options.comm.timeout, {}, failure) || hello.magic != kFrameMagic ||
          hello.kind != uint32_t(FrameKind::HELLO)) {
        continue;
      }
      std::string problem;
      if (int(hello.count) != options.size) {
        problem = fmt::format("rank {} was started with a world of {} ranks, rank 0 with {}", hello.root, hello.count, options.size);
      } else if (hello.root <= 0 || hello.root >= options.size) {
        problem = fmt::format("a process claims rank {}, outside the world of {} ranks", hello.root, options.size);
      } else if (comm->peers_[size_t(hello.root)].valid()) {
        problem = fmt::format("two processes claim rank {}", hello.root);
      }
      if (!problem.empty()) {
        const std::string reason = "rendezvous at " + where + ": " + problem;
        const Frame error{kFrameMagic, uint32_t(FrameKind::ERROR), 0, 0, reason.size(), -1, 0};
        if (send_all(socket, &error, sizeof(error), kErrorSendTimeout, failure)) {
          send_all(socket, reason.data(), reason.size(), kErrorSendTimeout, failure);
        }
        comm->fail_group(reason);
      }
      comm->peers_[size_t(hello.root)] = std::move(socket);
      ++joined;
      comm->send_frame(int(hello.root), Frame{kFrameMagic, uint32_t(FrameKind::WELCOME)}, nullptr, rendezvous);
    }
    for (int rank = 1; rank < options.size; ++rank) {
      comm->send_frame(rank, Frame{kFrameMagic, uint32_t(FrameKind::READY)}, nullptr, rendezvous);
    }
    return comm;
  }

  comm->peers_.resize(1);
  try {
    comm->peers_[0] = connect_until(options.master_addr, options.master_port, deadline);
  } catch (const Error& error) {
    fail("process group aborted: rank {}: rendezvous: {} within {} (is rank 0 running?)", options.rank, error.what(),
         format_duration(options.comm.timeout));
  }
  comm->send_frame(0, Frame{kFrameMagic, uint32_t(FrameKind::HELLO), 0, uint64_t(options.size), 0, options.rank, 0}, nullptr,
                   rendezvous);
  for (FrameKind expected : {FrameKind::WELCOME, FrameKind::READY}) {
    const Frame frame = comm->recv_frame(0, rendezvous, comm->answer_timeout());
    if (frame.kind != uint32_t(expected)) {
      comm->fail_group(fmt::format("rendezvous at {}: rank 0 sent {} instead of {}", where, kind_name(frame.kind),
                                   kind_name(uint32_t(expected))));
    }
  }
  return comm;
}

void TcpCommunicator::abort(const std::string& reason) {
  const std::string text = fmt::format("rank {} aborted: {}", options_.rank, reason);
  std::unique_lock in_flight(collective_mutex_, std::try_to_lock);
  if (in_flight.owns_lock()) {
    // No collective is running, so the sockets are free to carry the reason to the peers.
    try {
      fail_group(text);
    } catch (const Error&) {
    }
    return;
  }
  // The owning thread is inside a collective: closing our end wakes it, and it reports `text`.
  {
    std::lock_guard lock(failure_mutex_);
    if (!failed_) {
      failure_ = "process group aborted: " + text;
      failed_ = true;
    }
  }
  for (const Socket& peer : peers_) peer.shutdown();
}

void TcpCommunicator::check_usable() {
  if (failed_) {
    std::lock_guard lock(failure_mutex_);
    throw Error(failure_);
  }
}

void TcpCommunicator::fail_group(const std::string& reason) {
  {
    std::lock_guard lock(failure_mutex_);
    if (failed_) throw Error(failure_);
    failure_ = "process group aborted: " + reason;
    failed_ = true;
  }
  // Rank 0 tells everyone; another rank tells rank 0, which relays. Best effort: a peer that is
  // gone or not reading only costs kErrorSendTimeout.
  const Frame error{kFrameMagic, uint32_t(FrameKind::ERROR), sequence_, 0, reason.size(), -1, 0};
  SocketFailure ignored;
  for (const Socket& peer : peers_) {
    if (peer.valid() && send_all(peer, &error, sizeof(error), kErrorSendTimeout, ignored)) {
      send_all(peer, reason.data(), reason.size(), kErrorSendTimeout, ignored);
    }
  }
  // Shut down, not closed: abort() may be reading the descriptors from another thread, and a
  // closed one could be reused. The destructor closes them.
  for (const Socket& peer : peers_) peer.shutdown();
  throw Error(failure_);
}

void TcpCommunicator::send_frame(int peer, const Frame& frame, const void* payload, const Call& call) {
  const Socket& socket = peers_[options_.rank == 0 ? size_t(peer) : 0];
  // Rank 0 reads the ranks in order, so a later rank's send may wait for the earlier ones.
  const milliseconds timeout = options_.rank == 0 ? options_.comm.timeout : answer_timeout();
  SocketFailure failure;
  if (!send_all(socket, &frame, sizeof(frame), timeout, failure) ||
      (frame.bytes > 0 && !send_all(socket, payload, frame.bytes, timeout, failure))) {
    fail_transfer(peer, failure, call);
  }
}

TcpCommunicator::Frame TcpCommunicator::recv_frame(int peer, const Call& call, milliseconds timeout) {
  const Socket& socket = peers_[options_.rank == 0 ? size_t(peer) : 0];
  std::vector<const Socket*> watch;
  if (options_.rank == 0) {
    for (int other = 1; other < options_.size; ++other) {
      if (other != peer) watch.push_back(&peers_[size_t(other)]);
    }
  }
  Frame frame;
  SocketFailure failure;
  if (!recv_all(socket, &frame, sizeof(frame), timeout, watch, failure)) {
    if (failure.kind == SocketFailure::Kind::WATCHED_CLOSED) {
      // The watch list skips `peer`; map the index back to the rank it stands for.
      const int closed = int(failure.watched_index) + (int(failure.watched_index) + 1 >= peer ? 2 : 1);
      const std::string reason = error_left_by(closed);
      if (!reason.empty()) fail_group(reason);
      fail_transfer(closed, {SocketFailure::Kind::CLOSED, 0, ""}, call);
    }
    fail_transfer(peer, failure, call);
  }
  if (frame.magic != kFrameMagic) fail_group(fmt::format("rank {} sent a corrupt frame during {}", peer, call.describe()));
  if (frame.kind == uint32_t(FrameKind::ERROR)) {
    // The peer's reason, relayed as it is so that every rank reports the first failure the same way.
    std::string reason(size_t(std::min(frame.bytes, kMaxErrorText)), '\0');
    if (!recv_all(socket, reason.data(), reason.size(), options_.comm.timeout, {}, failure)) {
      reason = fmt::format("rank {} failed (its message was cut off)", peer);
    }
    if (options_.rank != 0) {
      std::lock_guard lock(failure_mutex_);
      failure_ = "process group aborted: " + reason;
      failed_ = true;
      for (const Socket& other : peers_) other.shutdown();
      throw Error(failure_);
    }
    fail_group(reason);
  }
  return frame;
}

std::string TcpCommunicator::error_left_by(int peer) {
  // A rank that aborted between collectives sent its reason before closing; read it if it is there.
  Frame frame;
  SocketFailure failure;
  const Socket& socket = peers_[size_t(peer)];
  if (!recv_all(socket, &frame, sizeof(frame), kErrorSendTimeout, {}, failure) || frame.magic != kFrameMagic ||
      frame.kind != uint32_t(FrameKind::ERROR)) {
    return "";
  }
  std::string reason(size_t(std::min(frame.bytes, kMaxErrorText)), '\0');
  if (!recv_all(socket, reason.data(), reason.size(), kErrorSendTimeout, {}, failure)) return "";
  return reason;
}

milliseconds TcpCommunicator::answer_timeout() const { return 2 * options_.comm.timeout; }

void TcpCommunicator::recv_payload(int peer, void* data, size_t bytes, const Call& call) {
  SocketFailure failure;
  const Socket& socket = peers_[options_.rank == 0 ? size_t(peer) : 0];
  if (bytes > 0 && !recv_all(socket, data, bytes, options_.comm.timeout, {}, failure)) fail_transfer(peer, failure, call);
}

void TcpCommunicator::fail_transfer(int peer, const SocketFailure& failure, const Call& call) {
  if (failed_) check_usable();  // abort() from another thread closed the sockets: report its reason
  const std::string during = call.kind == FrameKind::HELLO ? "rendezvous" : call.describe();
  switch (failure.kind) {
    case SocketFailure::Kind::CLOSED: {
      const std::string reason = error_left_by(peer);  // e.g. rank 0 said why before closing
      if (!reason.empty()) fail_group(reason);
      if (peer == 0) fail_group(fmt::format("rank {}: connection to rank 0 closed during {} (rank 0 exited or crashed)", options_.rank, during));
      fail_group(fmt::format("rank {} closed its connection during {} (the process exited or crashed)", peer, during));
    }
    case SocketFailure::Kind::TIMED_OUT:
      fail_group(fmt::format("rank {} waited {} for rank {} during {}", options_.rank, format_duration(options_.comm.timeout),
                             peer, during));
    case SocketFailure::Kind::WATCHED_CLOSED:
    case SocketFailure::Kind::ERROR:
      break;
  }
  fail_group(fmt::format("rank {}: connection to rank {} failed during {}: {}", options_.rank, peer, during, failure.detail));
}

void TcpCommunicator::do_all_reduce_sum(void* data, size_t count, DType dtype) {
  const std::lock_guard in_flight(collective_mutex_);
  check_usable();
  const Call call{FrameKind::ALL_REDUCE, count, dtype, -1, ++sequence_};
  const size_t bytes = count * dtype_size(dtype);
  if (options_.size == 1) return;
  if (options_.rank != 0) {
    send_frame(0, call.frame(bytes), data, call);
    expect_down(call, data, bytes);
    return;
  }
  std::vector<float> sums(count);
  widen_to_f32(dtype, data, count, sums.data());
  std::vector<std::byte> contribution(bytes);
  for (int peer = 1; peer < options_.size; ++peer) {
    expect_up(peer, call, contribution.data(), bytes);
    accumulate_f32(dtype, contribution.data(), count, sums.data());
  }
  narrow_from_f32(dtype, sums.data(), count, data);
  for (int peer = 1; peer < options_.size; ++peer) send_frame(peer, call.frame(bytes), data, call);
}

void TcpCommunicator::do_all_gather(const void* send, void* recv, size_t count, DType dtype) {
  const std::lock_guard in_flight(collective_mutex_);
  check_usable();
  const Call call{FrameKind::ALL_GATHER, count, dtype, -1, ++sequence_};
  const size_t bytes = count * dtype_size(dtype);
  std::byte* blocks = static_cast<std::byte*>(recv);
  std::byte* mine = blocks + size_t(options_.rank) * bytes;
  if (bytes > 0 && mine != send) std::memmove(mine, send, bytes);
  if (options_.size == 1) return;
  const size_t total = bytes * size_t(options_.size);
  if (options_.rank != 0) {
    send_frame(0, call.frame(bytes), mine, call);
    expect_down(call, blocks, total);
    return;
  }
  for (int peer = 1; peer < options_.size; ++peer) expect_up(peer, call, blocks + size_t(peer) * bytes, bytes);
  for (int peer = 1; peer < options_.size; ++peer) send_frame(peer, call.frame(total), blocks, call);
}

void TcpCommunicator::do_reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) {
  const std::lock_guard in_flight(collective_mutex_);
  check_usable();
  const Call call{FrameKind::REDUCE_SCATTER, count, dtype, -1, ++sequence_};
  const size_t element = dtype_size(dtype);
  const size_t total = count * size_t(options_.size);
  if (options_.rank != 0) {
    send_frame(0, call.frame(total * element), send, call);
    expect_down(call, recv, count * element);
    return;
  }
  std::vector<float> sums(total);
  widen_to_f32(dtype, send, total, sums.data());
  std::vector<std::byte> contribution(total * element);
  for (int peer = 1; peer < options_.size; ++peer) {
    expect_up(peer, call, contribution.data(), contribution.size());
    accumulate_f32(dtype, contribution.data(), total, sums.data());
  }
  std::vector<std::byte> result(total * element);
  narrow_from_f32(dtype, sums.data(), total, result.data());
  for (int peer = 1; peer < options_.size; ++peer) {
    send_frame(peer, call.frame(count * element), result.data() + size_t(peer) * count * element, call);
  }
  if (count > 0) std::memcpy(recv, result.data(), count * element);
}

void TcpCommunicator::do_broadcast(void* data, size_t count, DType dtype, int root) {
  const std::lock_guard in_flight(collective_mutex_);
  check_usable();
  const Call call{FrameKind::BROADCAST, count, dtype, root, ++sequence_};
  const size_t bytes = count * dtype_size(dtype);
  if (options_.size == 1) return;
  // Up: only the root's frame carries data. Down: everyone but the root receives it.
  if (options_.rank != 0) {
    const bool source = options_.rank == root;
    send_frame(0, call.frame(source ? bytes : 0), data, call);
    expect_down(call, data, source ? 0 : bytes);
    return;
  }
  for (int peer = 1; peer < options_.size; ++peer) expect_up(peer, call, data, peer == root ? bytes : 0);
  for (int peer = 1; peer < options_.size; ++peer) send_frame(peer, call.frame(peer == root ? 0 : bytes), data, call);
}

void TcpCommunicator::do_barrier() {
  const std::lock_guard in_flight(collective_mutex_);
  check_usable();
  const Call call{FrameKind::BARRIER, 0, DType::F32, -1, ++sequence_};
  if (options_.size == 1) return;
  if (options_.rank != 0) {
    send_frame(0, call.frame(0), nullptr, call);
    expect_down(call, nullptr, 0);
    return;
  }
  for (int peer = 1; peer < options_.size; ++peer) expect_up(peer, call, nullptr, 0);
  for (int peer = 1; peer < options_.size; ++peer) send_frame(peer, call.frame(0), nullptr, call);
}

void TcpCommunicator::expect_up(int peer, const Call& call, void* data, size_t bytes) {
  const Frame frame = recv_frame(peer, call, options_.comm.timeout);
  if (!call.matches(frame)) {
    fail_group(fmt::format("collective mismatch: rank 0 called {}, rank {} called {}", call.describe(), peer, Call::describe(frame)));
  }
  if (frame.bytes != bytes) {
    fail_group(fmt::format("rank {} sent {} bytes for {}, rank 0 expected {}", peer, frame.bytes, call.describe(), bytes));
  }
  recv_payload(peer, data, bytes, call);
}

void TcpCommunicator::expect_down(const Call& call, void* data, size_t bytes) {
  const Frame frame = recv_frame(0, call, answer_timeout());
  if (!call.matches(frame) || frame.bytes != bytes) {
    fail_group(fmt::format("collective mismatch: rank {} called {}, rank 0 answered {}", options_.rank, call.describe(),
                           Call::describe(frame)));
  }
  recv_payload(0, data, bytes, call);
}

}  // namespace shardlm
