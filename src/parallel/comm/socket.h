// The few TCP operations the process-group communicator needs, all with a time limit: listen,
// accept, connect (retrying while the listener is not up yet), and send/receive of whole buffers.
// Sockets are non-blocking and every wait is a poll(), so no call can block forever: a transfer
// fails once `timeout` passes without a byte moving, and when the peer closes. A receive can also
// watch other sockets and fail as soon as one of them is closed, which is how rank 0 notices a
// dead rank while it still waits for a live one.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace shardlm {

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void close();
  // Wakes any thread blocked on this socket, here or at the peer, without releasing the descriptor.
  void shutdown() const;

 private:
  int fd_ = -1;
};

// Why a transfer stopped; the caller turns it into a message with its own context.
struct SocketFailure {
  enum class Kind { CLOSED, TIMED_OUT, WATCHED_CLOSED, ERROR } kind;
  size_t watched_index = 0;  // WATCHED_CLOSED: which watched socket
  std::string detail;        // strerror text for ERROR
};

// Return false and describe the reason in `failure` when the transfer stops early.
bool send_all(const Socket& socket, const void* data, size_t bytes, std::chrono::milliseconds timeout,
              SocketFailure& failure);
bool recv_all(const Socket& socket, void* data, size_t bytes, std::chrono::milliseconds timeout,
              const std::vector<const Socket*>& watch, SocketFailure& failure);

// Listens on `port`: on the loopback address when `address` is a loopback name or address, on every
// interface of its family otherwise (rank 0 is the host other ranks reach as `address`).
Socket listen_on(const std::string& address, int port);
// Waits until `deadline` for a connection; returns an invalid Socket on timeout.
Socket accept_until(const Socket& listener, std::chrono::steady_clock::time_point deadline);
// Connects, retrying every 50 ms while refused (rank 0 may not listen yet); throws Error at deadline.
Socket connect_until(const std::string& address, int port, std::chrono::steady_clock::time_point deadline);

}  // namespace shardlm
