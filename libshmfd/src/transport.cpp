#include "shmfd/wire/transport.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace shmfd {
namespace {

constexpr std::size_t kMaxControl = CMSG_SPACE(kMaxFdsPerMessage * sizeof(int));

// Control-message buffer with the alignment cmsghdr needs.
union ControlBuffer {
  char bytes[kMaxControl];
  cmsghdr align;
};

// Takes ownership of every fd in every SCM_RIGHTS block before anything can fail.
void collect_fds(msghdr& msg, std::vector<UniqueFd>& out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (std::size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      out.emplace_back(fd);
    }
  }
}

// The kernel keeps only the fds that fit the receiver's control buffer and discards the rest
// (MSG_CTRUNC), so how many the sender attached is unknowable: say what the limit is.
std::string too_many_fds(const std::string& context, std::size_t max_fds, std::size_t arrived) {
  return context + ": the message carried more fds than a message may (at most " +
         std::to_string(max_fds) + "); the kernel discarded those past the limit and the " +
         std::to_string(arrived) + " that arrived were closed; the message was not read";
}

}  // namespace

Result<SendStatus> send_message(int socket, std::span<const std::byte> bytes,
                                std::span<const int> fds, IoMode mode) {
  const auto context = [&] {
    return "sendmsg(socket " + std::to_string(socket) + ", " + std::to_string(bytes.size()) +
           " bytes, " + std::to_string(fds.size()) + " fds)";
  };
  if (bytes.empty()) {
    // On SOCK_SEQPACKET a zero-byte datagram is indistinguishable from the peer closing.
    return fail(Errc::empty_message, context() + ": a message needs at least one byte");
  }
  if (fds.size() > kMaxFdsPerMessage) {
    return fail(Errc::too_many_fds,
                context() + ": at most " + std::to_string(kMaxFdsPerMessage) + " fds per message");
  }

  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (!fds.empty()) {
    const std::size_t fd_bytes = fds.size() * sizeof(int);
    std::memset(control.bytes, 0, CMSG_SPACE(fd_bytes));
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(fd_bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fd_bytes);
    std::memcpy(CMSG_DATA(c), fds.data(), fd_bytes);
  }

  const int flags = MSG_NOSIGNAL | (mode == IoMode::non_blocking ? MSG_DONTWAIT : 0);
  const ssize_t n = retry_eintr([&] { return ::sendmsg(socket, &msg, flags); });
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SendStatus::would_block;
    return fail_errno(errno, context());
  }
  // SOCK_SEQPACKET sends are atomic; a short count would mean a stream socket was passed.
  if (static_cast<std::size_t>(n) != bytes.size()) {
    return fail(Errc::message_truncated, context() + ": sent only " + std::to_string(n) +
                                             " bytes (not a SOCK_SEQPACKET socket?)");
  }
  return SendStatus::sent;
}

Result<ReceivedMessage> receive_message(int socket, std::span<std::byte> buffer,
                                        std::size_t max_fds, IoMode mode) {
  max_fds = std::min(max_fds, kMaxFdsPerMessage);
  const auto context = [&] {
    return "recvmsg(socket " + std::to_string(socket) + ", " + std::to_string(buffer.size()) +
           " bytes, " + std::to_string(max_fds) + " fds)";
  };

  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (max_fds > 0) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(max_fds * sizeof(int));
  }

  // MSG_TRUNC makes recvmsg return the datagram's real length, for the error message.
  const int flags =
      MSG_CMSG_CLOEXEC | MSG_TRUNC | (mode == IoMode::non_blocking ? MSG_DONTWAIT : 0);
  ssize_t n = retry_eintr([&] { return ::recvmsg(socket, &msg, flags); });
  if (n < 0 && errno == ECONNRESET) {
    // A peer that closes with messages of ours unread leaves ECONNRESET pending on this
    // socket, and the kernel reports it ahead of the messages the peer sent before it closed
    // (once: reading the error clears it). Those messages are still queued, and losing them
    // would lose, say, a producer's last frame: read on. An empty queue then reads as EOF.
    n = retry_eintr([&] { return ::recvmsg(socket, &msg, flags); });
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReceivedMessage{};
    return fail_errno(errno, context());
  }

  ReceivedMessage out;
  collect_fds(msg, out.fds);  // owned first: every early return below closes them
  const auto received = static_cast<std::size_t>(n);

  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    // The kernel already discarded the fds that did not fit; close the ones that did.
    const std::size_t got = out.fds.size();
    out.fds.clear();
    return fail(Errc::fds_truncated, too_many_fds(context(), max_fds, got));
  }
  if (out.fds.size() > max_fds) {
    // CMSG_SPACE rounds up, so the kernel can fit one fd more than asked for without
    // MSG_CTRUNC: the limit is enforced here.
    const std::size_t got = out.fds.size();
    out.fds.clear();
    return fail(Errc::fds_truncated, too_many_fds(context(), max_fds, got));
  }
  if ((msg.msg_flags & MSG_TRUNC) != 0 || received > buffer.size()) {
    out.fds.clear();
    return fail(Errc::message_truncated, context() + ": datagram of " + std::to_string(received) +
                                             " bytes exceeds the " + std::to_string(buffer.size()) +
                                             "-byte limit");
  }
  if (received == 0) {
    if (!out.fds.empty()) {
      out.fds.clear();
      return fail(Errc::empty_message, context() + ": zero-byte datagram carrying fds");
    }
    out.status = RecvStatus::peer_closed;
    return out;
  }
  out.status = RecvStatus::message;
  out.size = received;
  return out;
}

Result<std::pair<UniqueFd, UniqueFd>> make_seqpacket_pair() {
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return fail_errno(errno, "socketpair(AF_UNIX, SOCK_SEQPACKET)");
  }
  return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

void shutdown_and_drain(int socket, std::size_t max_messages) {
  ::shutdown(socket, SHUT_RDWR);
  // MSG_TRUNC discards the bytes past the buffer; a message too big is still one message.
  std::byte sink[64];
  for (std::size_t i = 0; i < max_messages; ++i) {
    auto m = receive_message(socket, sink, 0, IoMode::non_blocking);  // its fds close here
    if (m && m->status != RecvStatus::message) break;
    if (!m && !m.error().is(Errc::fds_truncated) && !m.error().is(Errc::message_truncated) &&
        !m.error().is(Errc::empty_message)) {
      break;
    }
  }
}

}  // namespace shmfd
