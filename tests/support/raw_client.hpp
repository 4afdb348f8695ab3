// Test support: a client that speaks the broker protocol by hand, as docs/PROTOCOL.md describes
// it, without libshmfd's Producer or Consumer: what a third-party implementation does. Every
// message is built field by field and sent as one SOCK_SEQPACKET datagram in the standard
// Cap'n Proto framing (segment table first).
#pragma once

#include <poll.h>

#include <cstdint>
#include <string>
#include <vector>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "shmfd/memfd.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/wire/transport.hpp"
#include "shmfd/wire/unix_socket.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::testing {

// One message from the broker, with the fields the tests look at.
struct Received {
  bool closed = false;     // the broker closed the connection
  bool timed_out = false;  // nothing within the wait (a test failure, never a synchronisation)
  proto::Message::Which which = proto::Message::HELLO;
  std::string topic;  // of whichever message has one
  proto::ErrorCode code = proto::ErrorCode::INTERNAL;
  std::string message;         // Error.message, EndOfStream.reason
  std::uint64_t sequence = 0;  // Error, Deliver
  std::uint32_t version = 0;   // Welcome
  std::uint32_t max_message_bytes = 0;
  std::uint32_t max_fds = 0;
  std::uint32_t pool = 0;  // Deliver, PoolAttach, SlotFree, PoolRegistered
  std::uint32_t slot = 0;
  std::uint32_t depth = 0;                              // Subscribed
  std::uint64_t dropped = 0;                            // Deliver, EndOfStream
  proto::Guarantee guarantee = proto::Guarantee::POOL;  // Deliver
  std::uint32_t credit = 0;                             // Credit
  std::uint32_t window = 0;                             // Welcome.publishWindow
  bool has_meta = false;                                // Deliver: the frame carries FrameMeta
  std::uint32_t meta_bytes = 0;                         // ChannelRequest.metaBytes
  std::uint64_t call = 0;  // Request, Response, Cancel: the call's id (version 6)
  proto::CallError call_error = proto::CallError::NONE;  // Response
  bool last = false;                                     // Response
  std::vector<UniqueFd> fds;

  bool is(proto::Message::Which w) const { return !closed && !timed_out && which == w; }
  bool is_error(proto::ErrorCode c) const { return is(proto::Message::ERROR) && code == c; }
};

inline std::ostream& operator<<(std::ostream& os, const Received& r) {
  if (r.closed) return os << "(connection closed)";
  if (r.timed_out) return os << "(nothing arrived)";
  os << "message #" << static_cast<unsigned>(r.which) << " topic '" << r.topic << "'";
  if (r.which == proto::Message::ERROR) os << " [" << to_string(r.code) << "] " << r.message;
  return os;
}

// A string as Cap'n Proto text with its full length (NUL bytes included): std::string converts
// through a const char* otherwise, which would stop at the first NUL.
inline capnp::Text::Reader text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

class RawClient {
 public:
  // Connects; with `version` != 0 also sends Hello (without reading the answer).
  explicit RawClient(const std::string& path, std::uint32_t version = kProtocolVersion,
                     const std::string& name = "raw") {
    auto fd = connect_seqpacket(path);
    if (!fd) throw std::runtime_error(fd.error().message());
    fd_ = std::move(*fd);
    if (version != 0) {
      send([&](proto::Message::Builder m) {
        auto hello = m.initHello();
        hello.setVersion(version);
        hello.setClientName(name);
      });
    }
  }

  int fd() const { return fd_.get(); }

  // Connects and completes the handshake; throws unless the broker says Welcome.
  static RawClient greeted(const std::string& path, const std::string& name = "raw") {
    RawClient c(path, kProtocolVersion, name);
    Received r = c.next();
    if (!r.is(proto::Message::WELCOME)) throw std::runtime_error("no Welcome");
    return c;
  }

  template <typename Build>
  bool send(Build build, std::vector<int> fds = {}) {
    capnp::MallocMessageBuilder message;
    build(message.initRoot<proto::Message>());
    const auto words = capnp::messageToFlatArray(message);
    return send_bytes(std::as_bytes(std::span(words.begin(), words.size())), fds);
  }
  bool send_bytes(std::span<const std::byte> bytes, std::span<const int> fds = {}) {
    auto sent = send_message(fd_.get(), bytes, fds);
    return sent && *sent == SendStatus::sent;
  }

  // The next message other than Credit (which may come to a producer at any time, docs/
  // PROTOCOL.md section 4) and TopicAdvertised (which a version-5 subscriber gets after
  // Subscribed and whenever the topic is advertised, section 15: counted in `advertised`, and
  // next_any() sees it), waiting up to `wait_ms` for each.
  Received next(int wait_ms = 5000) {
    for (;;) {
      Received r = next_any(wait_ms);
      if (r.is(proto::Message::TOPIC_ADVERTISED)) {
        ++advertised;
        continue;
      }
      if (!r.is(proto::Message::CREDIT)) return r;
      credited += r.credit;
    }
  }
  std::uint64_t advertised = 0;  // TopicAdvertised messages that next() passed over
  std::uint64_t credited = 0;    // frames covered by the Credit that next() passed over

  // The next message of any kind, waiting up to `wait_ms`.
  Received next_any(int wait_ms = 5000) {
    Received out;
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, wait_ms) != 1) {
      out.timed_out = true;
      return out;
    }
    auto m = receive_message(fd_.get(), buffer_.bytes(), kMaxFdsPerMessage, IoMode::blocking);
    if (!m || m->status == RecvStatus::peer_closed) {
      out.closed = true;
      return out;
    }
    out.fds = std::move(m->fds);
    (void)decode_message<proto::Message>(
        buffer_.bytes(m->size), [&](proto::Message::Reader r) -> Status {
          using M = proto::Message;
          out.which = r.which();
          switch (r.which()) {
            case M::WELCOME:
              out.version = r.getWelcome().getVersion();
              out.max_message_bytes = r.getWelcome().getMaxMessageBytes();
              out.max_fds = r.getWelcome().getMaxFdsPerMessage();
              out.window = r.getWelcome().getPublishWindow();
              break;
            case M::ERROR:
              out.code = r.getError().getCode();
              out.message = text_of(r.getError().getMessage());
              out.topic = text_of(r.getError().getTopic());
              out.sequence = r.getError().getSequence();
              break;
            case M::ADVERTISED:
              out.topic = text_of(r.getAdvertised().getTopic());
              break;
            case M::UNADVERTISED:
              out.topic = text_of(r.getUnadvertised().getTopic());
              break;
            case M::SUBSCRIBED:
              out.topic = text_of(r.getSubscribed().getTopic());
              out.depth = r.getSubscribed().getQueueDepth();
              break;
            case M::UNSUBSCRIBED:
              out.topic = text_of(r.getUnsubscribed().getTopic());
              break;
            case M::DELIVER:
              out.topic = text_of(r.getDeliver().getTopic());
              out.sequence = r.getDeliver().getFrame().getSequence();
              out.pool = r.getDeliver().getFrame().getPool();
              out.slot = r.getDeliver().getFrame().getSlot();
              out.dropped = r.getDeliver().getDropped();
              out.guarantee = r.getDeliver().getGuarantee();
              out.has_meta = r.getDeliver().getFrame().hasMeta();
              break;
            case M::TOPIC_ADVERTISED:
              out.topic = text_of(r.getTopicAdvertised().getTopic());
              break;
            case M::END_OF_STREAM:
              out.topic = text_of(r.getEndOfStream().getTopic());
              out.message = text_of(r.getEndOfStream().getReason());
              out.dropped = r.getEndOfStream().getDropped();
              break;
            case M::POOL_REGISTERED:
              out.topic = text_of(r.getPoolRegistered().getTopic());
              out.pool = r.getPoolRegistered().getPool();
              break;
            case M::POOL_ATTACH:
              out.topic = text_of(r.getPoolAttach().getTopic());
              out.pool = r.getPoolAttach().getPool();
              break;
            case M::CREDIT:
              out.credit = r.getCredit().getFrames();
              break;
            case M::SLOT_FREE:
              out.pool = r.getSlotFree().getPool();
              out.slot = r.getSlotFree().getSlot();
              break;
            case M::CHANNEL_REQUEST:
              out.topic = text_of(r.getChannelRequest().getTopic());
              out.meta_bytes = r.getChannelRequest().getMetaBytes();
              break;
            case M::OFFERED:
              out.topic = text_of(r.getOffered().getService());
              break;
            case M::REQUEST:
              out.topic = text_of(r.getRequest().getService());
              out.call = r.getRequest().getCall();
              break;
            case M::RESPONSE:
              out.call = r.getResponse().getCall();
              out.call_error = r.getResponse().getError();
              out.last = r.getResponse().getLast();
              out.message = text_of(r.getResponse().getMessage());
              break;
            case M::CANCEL:
              out.call = r.getCancel().getCall();
              break;
            default:
              break;
          }
          return {};
        });
    return out;
  }

  // The next message that is not a SlotFree (those may come at any time to a pool producer).
  Received next_not_slot_free() {
    for (;;) {
      Received r = next();
      if (!r.is(proto::Message::SLOT_FREE)) return r;
    }
  }

  // --- The requests, built as the spec describes them. ---
  void advertise(const std::string& topic, proto::LayoutKind kind = proto::LayoutKind::BLOB,
                 proto::Guarantee guarantee = proto::Guarantee::SEALED) {
    send([&](proto::Message::Builder m) {
      auto a = m.initAdvertise();
      a.setTopic(text(topic));
      a.setKind(kind);
      a.setGuarantee(guarantee);
    });
  }
  void subscribe(const std::string& topic, std::uint32_t depth = 0,
                 proto::Backpressure policy = proto::Backpressure::DROP_OLDEST,
                 std::uint32_t prefetch = 0) {
    send([&](proto::Message::Builder m) {
      auto s = m.initSubscribe();
      s.setTopic(text(topic));
      s.setQueueDepth(depth);
      s.setBackpressure(policy);
      s.setPrefetch(prefetch);
    });
  }
  void read(const std::string& topic, std::uint64_t count) {
    send([&](proto::Message::Builder m) {
      auto r = m.initRead();
      r.setTopic(text(topic));
      r.setCount(count);
    });
  }
  void unsubscribe(const std::string& topic) {
    send([&](proto::Message::Builder m) { m.initUnsubscribe().setTopic(text(topic)); });
  }
  void unadvertise(const std::string& topic) {
    send([&](proto::Message::Builder m) { m.initUnadvertise().setTopic(text(topic)); });
  }
  void release(const std::string& topic, std::uint64_t sequence) {
    send([&](proto::Message::Builder m) {
      auto r = m.initRelease();
      r.setTopic(text(topic));
      r.setSequence(sequence);
    });
  }
  // A blob frame of `size` bytes in its own buffer, fd #0 of the datagram.
  void publish_fd(const std::string& topic, std::uint64_t sequence, int fd, std::uint64_t size,
                  std::vector<int> fds = {}) {
    if (fds.empty()) fds.push_back(fd);
    send(
        [&](proto::Message::Builder m) {
          auto p = m.initPublish();
          p.setTopic(text(topic));
          auto f = p.initFrame();
          f.setFd(0);
          f.setSequence(sequence);
          layout_to_proto(blob_layout(size), f.initLayout());
        },
        fds);
  }
  void publish_slot(const std::string& topic, std::uint64_t sequence, std::uint32_t pool,
                    std::uint32_t slot, std::uint64_t size) {
    send([&](proto::Message::Builder m) {
      auto p = m.initPublish();
      p.setTopic(text(topic));
      auto f = p.initFrame();
      f.setSequence(sequence);
      f.setPool(pool);
      f.setSlot(slot);
      layout_to_proto(blob_layout(size), f.initLayout());
    });
  }
  void register_pool(const std::string& topic, int fd, std::uint32_t slots,
                     std::uint64_t slot_size) {
    send(
        [&](proto::Message::Builder m) {
          auto r = m.initRegisterPool();
          r.setTopic(text(topic));
          r.setSlotCount(slots);
          r.setSlotSize(slot_size);
          r.setFd(0);
        },
        {fd});
  }
  // A round trip: every message the broker sent before answering this one arrives first.
  void introspect() {
    send([](proto::Message::Builder m) { m.initIntrospect(); });
  }

 private:
  UniqueFd fd_;
  MessageBuffer buffer_{256 * 1024};
};

// A sealed memfd of `size` bytes (the sealed guarantee).
inline SealedBuffer sealed_memfd(std::size_t size, const std::string& name = "raw") {
  auto buffer = WritableBuffer::create(name, size);
  if (!buffer) throw std::runtime_error(buffer.error().message());
  auto sealed = std::move(*buffer).seal();
  if (!sealed) throw std::runtime_error(sealed.error().message());
  return std::move(*sealed);
}

}  // namespace shmfd::testing
