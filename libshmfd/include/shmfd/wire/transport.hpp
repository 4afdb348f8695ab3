// Fd transport on SOCK_SEQPACKET: one message = one datagram of bytes plus up to 253 fds.
//
// Receiving is the dangerous half: the kernel installs the sender's fds in our table before we
// see a single byte, so every fd is owned (UniqueFd) before anything else can fail, and a
// message whose fds or bytes did not fit (MSG_CTRUNC / MSG_TRUNC) closes all it brought and is
// reported as an error. A malicious peer cannot fill our fd table or leave fds behind.
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "shmfd/error.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd {

// SCM_MAX_FD in the kernel: the most fds one sendmsg(2) can carry.
inline constexpr std::size_t kMaxFdsPerMessage = 253;

enum class IoMode {
  blocking,      // waits as the socket does
  non_blocking,  // MSG_DONTWAIT: "would block" is a value, whatever the socket's O_NONBLOCK
};

enum class SendStatus { sent, would_block };

// Sends `bytes` (at least one) and `fds` as one datagram, with MSG_NOSIGNAL (a gone peer is
// EPIPE, not SIGPIPE). EINTR is retried. The fds stay owned by the caller.
Result<SendStatus> send_message(int socket, std::span<const std::byte> bytes,
                                std::span<const int> fds = {}, IoMode mode = IoMode::blocking);

enum class RecvStatus { message, would_block, peer_closed };

struct ReceivedMessage {
  RecvStatus status = RecvStatus::would_block;
  std::size_t size = 0;       // bytes written to the buffer
  std::vector<UniqueFd> fds;  // owned, close-on-exec (MSG_CMSG_CLOEXEC)
};

// Receives one datagram into `buffer`, accepting at most `max_fds` fds (clamped to 253).
// Errors: Errc::message_truncated (datagram larger than the buffer), Errc::fds_truncated (more
// fds than max_fds), Errc::empty_message (zero bytes with fds); in each case every fd that
// arrived has been closed.
Result<ReceivedMessage> receive_message(int socket, std::span<std::byte> buffer,
                                        std::size_t max_fds, IoMode mode = IoMode::blocking);

// Ends a connection so that the peer still reads what was sent to it last (an Error saying
// why). Closing a unix socket with messages of the peer unread makes the peer's next recv fail
// with ECONNRESET before it reads ours; so: shutdown(SHUT_RDWR) first (the peer's sends now
// fail with EPIPE), then discard up to `max_messages` it had sent, closing any fds they
// carried. Does not close `socket`.
void shutdown_and_drain(int socket, std::size_t max_messages);

// A connected AF_UNIX SOCK_SEQPACKET pair, close-on-exec.
Result<std::pair<UniqueFd, UniqueFd>> make_seqpacket_pair();

}  // namespace shmfd
