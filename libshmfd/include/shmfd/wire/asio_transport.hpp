// Asio forms of the fd transport: wait for readiness with async_wait, then do the same
// non-blocking recvmsg/sendmsg as the blocking forms on native_handle(). (Asio's own socket
// operations cannot carry SCM_RIGHTS, and Debian's Asio 1.22 has no seqpacket local protocol;
// use asio::generic::seq_packet_protocol(AF_UNIX, SOCK_SEQPACKET).)
//
// Both take any Asio completion token (callback, asio::use_awaitable, asio::use_future, ...)
// and complete with a Result: errors are values here too, never exceptions.
//   void(Result<ReceivedMessage>)  for async_receive_message
//   void(Result<SendStatus>)       for async_send_message (never SendStatus::would_block)
//
// The socket, the buffer and the fd list must stay alive until the operation completes.
#pragma once

#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <asio/post.hpp>

#include "shmfd/wire/transport.hpp"

namespace shmfd {
namespace detail {

// Tries a non-blocking operation; while it would block (the attempt returns nullopt), waits
// for readiness and tries again. The first attempt runs inside the initiating function; if it
// finishes there, completion is posted so the handler never runs from within the initiating
// call (Asio's rule for asynchronous operations).
// `wait` says which readiness to wait for after an attempt that would block.
template <typename Waitable, typename Attempt, typename Wait, typename Value>
class ReadinessOp {
 public:
  ReadinessOp(Waitable& waitable, Wait wait, Attempt attempt)
      : waitable_(waitable), wait_(std::move(wait)), attempt_(std::move(attempt)) {}

  template <typename Self>
  void operator()(Self& self, std::error_code ec = {}) {
    if (result_) {
      self.complete(std::move(*result_));
      return;
    }
    if (ec) {
      self.complete(Value(
          tl::unexpect, Error(ec, "async_wait on fd " + std::to_string(waitable_.native_handle()) +
                                      ": " + ec.message())));
      return;
    }
    std::optional<Value> r = attempt_(waitable_.native_handle());
    if (!r) {
      started_ = true;
      waitable_.async_wait(wait_(), std::move(self));
      return;
    }
    if (!started_) {
      result_.emplace(std::move(*r));
      asio::post(std::move(self));
      return;
    }
    self.complete(std::move(*r));
  }

 private:
  Waitable& waitable_;
  Wait wait_;
  Attempt attempt_;
  bool started_ = false;
  std::optional<Value> result_;
};

// Runs `attempt` (returning std::optional<Value>, nullopt meaning "would block") until it
// produces a value, waiting for `wait` readiness on `waitable` in between.
template <typename Value, typename Waitable, typename Attempt, typename Token>
auto async_when_ready(Waitable& waitable, typename Waitable::wait_type wait, Attempt attempt,
                      Token&& token) {
  auto fixed = [wait] { return wait; };
  using Op = ReadinessOp<Waitable, Attempt, decltype(fixed), Value>;
  return asio::async_compose<Token, void(Value)>(Op(waitable, fixed, std::move(attempt)), token,
                                                 waitable);
}

// The same, with the readiness to wait for chosen after each attempt by `wait()`.
template <typename Value, typename Waitable, typename Wait, typename Attempt, typename Token>
requires std::is_invocable_r_v<typename Waitable::wait_type, Wait>
auto async_when_ready(Waitable& waitable, Wait wait, Attempt attempt, Token&& token) {
  using Op = ReadinessOp<Waitable, Attempt, Wait, Value>;
  return asio::async_compose<Token, void(Value)>(Op(waitable, std::move(wait), std::move(attempt)),
                                                 token, waitable);
}

}  // namespace detail

template <typename Socket, typename Token>
auto async_receive_message(Socket& socket, std::span<std::byte> buffer, std::size_t max_fds,
                           Token&& token) {
  auto attempt = [buffer, max_fds](int fd) -> std::optional<Result<ReceivedMessage>> {
    auto r = receive_message(fd, buffer, max_fds, IoMode::non_blocking);
    if (r && r->status == RecvStatus::would_block) return std::nullopt;
    return r;
  };
  return detail::async_when_ready<Result<ReceivedMessage>>(socket, Socket::wait_read,
                                                           std::move(attempt), token);
}

template <typename Socket, typename Token>
auto async_send_message(Socket& socket, std::span<const std::byte> bytes, std::span<const int> fds,
                        Token&& token) {
  auto attempt = [bytes, fds](int fd) -> std::optional<Result<SendStatus>> {
    auto r = send_message(fd, bytes, fds, IoMode::non_blocking);
    if (r && *r == SendStatus::would_block) return std::nullopt;
    return r;
  };
  return detail::async_when_ready<Result<SendStatus>>(socket, Socket::wait_write,
                                                      std::move(attempt), token);
}

}  // namespace shmfd
