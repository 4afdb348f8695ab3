// A direct producer-to-worker link without a broker: frames (one fd + layout + sequence) over a
// SOCK_SEQPACKET socketpair, as the sandbox and plugin examples use between a host and its
// child processes. Every received fd is verified before use, like the broker does.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "shmfd/memfd.hpp"
#include "shmfd/wire/intake.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::examples {

struct LinkFrame {
  UniqueFd fd;
  Layout layout;
  std::uint64_t sequence = 0;
  std::uint64_t size = 0;  // verified buffer size
};

// A frame, a message text (an Error sent by the other side), or the other side closing.
struct LinkClosed {};
using LinkEvent = std::variant<LinkFrame, std::string, LinkClosed>;

inline Status send_link_frame(int sock, int fd, const Layout& layout, std::uint64_t sequence) {
  capnp::MallocMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic("link");
  auto frame = publish.initFrame();
  frame.setFd(0);
  frame.setSequence(sequence);
  layout_to_proto(layout, frame.initLayout());
  auto sent = send_capnp(sock, message, std::span(&fd, 1));
  if (!sent) return fail(std::move(sent.error()));
  return {};
}

inline Status send_link_text(int sock, const std::string& text) {
  capnp::MallocMessageBuilder message;
  auto error = message.initRoot<proto::Message>().initError();
  error.setCode(proto::ErrorCode::INTERNAL);
  error.setMessage(text);
  auto sent = send_capnp(sock, message);
  if (!sent) return fail(std::move(sent.error()));
  return {};
}

// Receives one message; a frame is verified as immutable (`sealed`) and its layout checked
// against the buffer before it is returned.
inline Result<LinkEvent> receive_link(int sock, MessageBuffer& buffer) {
  auto m = receive_message(sock, buffer.bytes(), 1);
  if (!m) return fail(std::move(m.error()));
  if (m->status == RecvStatus::peer_closed) return LinkEvent(LinkClosed{});
  return decode_message<proto::Message>(
      buffer.bytes(m->size), [&](proto::Message::Reader r) -> Result<LinkEvent> {
        if (r.isError()) return LinkEvent(std::string(text_of(r.getError().getMessage())));
        if (!r.isPublish()) return fail(Errc::protocol_violation, "expected a frame");
        auto frame = r.getPublish().getFrame();
        auto accepted = accept_frame(frame, m->fds, Guarantee::sealed);
        if (!accepted) return fail(std::move(accepted.error()));
        return LinkEvent(LinkFrame{std::move(accepted->fd), accepted->layout, frame.getSequence(),
                                   accepted->verified.size});
      });
}

// A processed frame to send back.
struct LinkReply {
  SealedBuffer buffer;
  Layout layout;
};

// The worker side of a link: receives frames until the other side closes, refuses what is not
// an rgba8 image, maps each one read-only and passes it to `process(frame, image, bytes)`,
// which returns the reply or an error (sent back as text). Returns the exit status.
template <typename Process>
int serve_rgba_frames(int sock, Process&& process) {
  MessageBuffer buffer;
  for (;;) {
    auto event = receive_link(sock, buffer);
    if (!event) {
      (void)send_link_text(sock, "refused input: " + event.error().message());
      continue;
    }
    if (std::holds_alternative<LinkClosed>(*event)) return 0;
    auto* frame = std::get_if<LinkFrame>(&*event);
    const auto* image = frame ? std::get_if<ImageLayout>(&frame->layout) : nullptr;
    if (image == nullptr || image->format != PixelFormat::rgba8) {
      (void)send_link_text(sock, "refused input: not an rgba8 image");
      continue;
    }
    auto view =
        Mapping::map(frame->fd.get(), static_cast<std::size_t>(frame->size), Access::read_only);
    if (!view) {
      (void)send_link_text(sock, view.error().message());
      continue;
    }
    Result<LinkReply> reply = process(*frame, *image, view->bytes());
    if (!reply) {
      (void)send_link_text(sock, reply.error().message());
      continue;
    }
    if (!send_link_frame(sock, reply->buffer.fd(), reply->layout, frame->sequence)) return 1;
  }
}

}  // namespace shmfd::examples
