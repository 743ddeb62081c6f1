// POSIX sockets with poll(): non-blocking descriptors, MSG_NOSIGNAL (a dead peer must produce an
// error, not SIGPIPE), TCP_NODELAY (collectives are latency-bound request/response exchanges).
#include "parallel/comm/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : int(std::min<long long>(left, 1'000'000));
}

void configure(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct AddressList {
  addrinfo* head = nullptr;
  ~AddressList() {
    if (head != nullptr) freeaddrinfo(head);
  }
};

// `address` empty: the wildcard addresses to bind to.
AddressList resolve(const std::string& address, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = address.empty() ? AI_PASSIVE : 0;
  AddressList list;
  const int status =
      getaddrinfo(address.empty() ? nullptr : address.c_str(), std::to_string(port).c_str(), &hints, &list.head);
  if (status != 0) fail("cannot resolve {}:{}: {}", address, port, gai_strerror(status));
  return list;
}

bool is_loopback(const addrinfo& info) {
  if (info.ai_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(info.ai_addr)->sin_addr.s_addr) >> 24) == 127;
  }
  if (info.ai_family == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(info.ai_addr)->sin6_addr);
  }
  return false;
}

// Waits for `events` on `socket` (and for closure of any watched socket); false on failure.
bool wait_for(const Socket& socket, short events, std::chrono::milliseconds timeout, const std::vector<const Socket*>& watch,
              SocketFailure& failure) {
  std::vector<pollfd> fds;
  fds.push_back({socket.fd(), events, 0});
  for (const Socket* watched : watch) fds.push_back({watched->fd(), POLLRDHUP, 0});
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const int ready = poll(fds.data(), fds.size(), milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      failure = {SocketFailure::Kind::ERROR, 0, std::strerror(errno)};
      return false;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
        failure = {SocketFailure::Kind::WATCHED_CLOSED, i - 1, ""};
        return false;
      }
    }
    if (fds[0].revents != 0) return true;  // ready, or closed/failed: the read or write says which
    if (ready == 0) {
      failure = {SocketFailure::Kind::TIMED_OUT, 0, ""};
      return false;
    }
  }
}

}  // namespace

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::shutdown() const {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

bool send_all(const Socket& socket, const void* data, size_t bytes, std::chrono::milliseconds timeout,
              SocketFailure& failure) {
  const char* next = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t sent = ::send(socket.fd(), next, bytes, MSG_NOSIGNAL);
    if (sent > 0) {
      next += sent;
      bytes -= size_t(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(socket, POLLOUT, timeout, {}, failure)) return false;
      continue;
    }
    if (sent < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) {
      failure = {SocketFailure::Kind::CLOSED, 0, ""};
    } else {
      failure = {SocketFailure::Kind::ERROR, 0, std::strerror(errno)};
    }
    return false;
  }
  return true;
}

bool recv_all(const Socket& socket, void* data, size_t bytes, std::chrono::milliseconds timeout,
              const std::vector<const Socket*>& watch, SocketFailure& failure) {
  char* next = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t received = ::recv(socket.fd(), next, bytes, 0);
    if (received > 0) {
      next += received;
      bytes -= size_t(received);
      continue;
    }
    if (received == 0) {
      failure = {SocketFailure::Kind::CLOSED, 0, ""};
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(socket, POLLIN, timeout, watch, failure)) return false;
      continue;
    }
    if (errno == ECONNRESET || errno == ENOTCONN) {
      failure = {SocketFailure::Kind::CLOSED, 0, ""};
    } else {
      failure = {SocketFailure::Kind::ERROR, 0, std::strerror(errno)};
    }
    return false;
  }
  return true;
}

Socket listen_on(const std::string& address, int port) {
  const AddressList target = resolve(address, port);
  const bool loopback = is_loopback(*target.head);
  const AddressList bind_list = resolve(loopback ? address : "", port);
  std::string last_error = "no usable address";
  for (const addrinfo* info = bind_list.head; info != nullptr; info = info->ai_next) {
    if (!loopback && info->ai_family != target.head->ai_family) continue;
    Socket socket(::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol));
    if (!socket.valid()) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(socket.fd(), info->ai_addr, info->ai_addrlen) != 0 || ::listen(socket.fd(), SOMAXCONN) != 0) {
      last_error = std::strerror(errno);
      continue;
    }
    configure(socket.fd());
    return socket;
  }
  fail("cannot listen on {}:{}: {}", address, port, last_error);
}

Socket accept_until(const Socket& listener, Clock::time_point deadline) {
  while (true) {
    const int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      configure(fd);
      return Socket(fd);
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      fail("accepting a rank's connection failed: {}", std::strerror(errno));
    }
    pollfd pfd{listener.fd(), POLLIN, 0};
    const int wait = milliseconds_until(deadline);
    if (wait == 0) return Socket();
    poll(&pfd, 1, wait);
  }
}

Socket connect_until(const std::string& address, int port, Clock::time_point deadline) {
  std::string last_error;
  while (true) {
    const AddressList list = resolve(address, port);
    for (const addrinfo* info = list.head; info != nullptr; info = info->ai_next) {
      Socket socket(::socket(info->ai_family, info->ai_socktype | SOCK_CLOEXEC, info->ai_protocol));
      if (!socket.valid()) {
        last_error = std::strerror(errno);
        continue;
      }
      configure(socket.fd());
      if (::connect(socket.fd(), info->ai_addr, info->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        continue;
      }
      pollfd pfd{socket.fd(), POLLOUT, 0};
      poll(&pfd, 1, std::max(1, milliseconds_until(deadline)));
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &length);
      if ((pfd.revents & POLLOUT) && error == 0) return socket;
      last_error = error != 0 ? std::strerror(error) : "timed out";
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fail("could not connect to {}:{}: {}", address, port, last_error);
}

}  // namespace shardlm
