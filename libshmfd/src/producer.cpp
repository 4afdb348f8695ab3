#include "shmfd/producer.hpp"

#include <time.h>

namespace shmfd {
namespace {

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

Result<Producer> Producer::connect(const std::string& socket_path, std::string_view client_name) {
  auto connection = Connection::open(socket_path, client_name);
  if (!connection) return fail(std::move(connection.error()));
  return Producer(std::move(*connection));
}

Status Producer::advertise(std::string_view topic, LayoutKind kind, Guarantee level) {
  if (auto ok = check_topic_name(topic); !ok) return ok;
  capnp::MallocMessageBuilder message;
  auto advertise = message.initRoot<proto::Message>().initAdvertise();
  advertise.setTopic(std::string(topic));
  advertise.setKind(kind);
  advertise.setGuarantee(to_proto(level));
  if (auto sent = connection_.send(message); !sent) return fail(std::move(sent.error()));

  // Wait for the answer about this topic; refusals of earlier frames are kept for later.
  for (;;) {
    auto reply = connection_.receive();
    if (!reply) return fail(std::move(reply.error()));
    auto done = decode_message<proto::Message>(
        connection_.message(*reply), [&](proto::Message::Reader m) -> Result<bool> {
          if (m.isAdvertised()) return view(m.getAdvertised().getTopic()) == topic;
          if (!m.isError()) return false;
          auto error = m.getError();
          if (view(error.getTopic()) == topic && error.getSequence() == 0) {
            return fail(broker_error(error));
          }
          errors_.push_back(broker_error(error));
          return false;
        });
    if (!done) return fail(std::move(done.error()));
    if (*done) return {};
  }
}

Result<WritableBuffer> Producer::allocate(std::string_view topic, const Layout& layout,
                                          MemfdOptions options) {
  auto extent = layout_extent(layout);
  if (!extent) return fail(std::move(extent.error()));
  return WritableBuffer::create(topic, static_cast<std::size_t>(*extent), options);
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  auto extent = validate_layout(layout, buffer.size());
  if (!extent) return fail(std::move(extent.error()));
  auto sealed = std::move(buffer).seal();
  if (!sealed) return fail(std::move(sealed.error()));
  auto it = next_sequence_.find(topic);
  if (it == next_sequence_.end()) it = next_sequence_.emplace(std::string(topic), 1).first;
  const std::uint64_t sequence = it->second++;

  capnp::MallocMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic(std::string(topic));
  auto frame = publish.initFrame();
  frame.setFd(0);
  frame.setSequence(sequence);
  frame.setTimestampNs(timestamp_ns != 0 ? timestamp_ns : monotonic_ns());
  layout_to_proto(layout, frame.initLayout());
  return PreparedFrame{std::string(topic), sequence, std::move(*sealed), encode_message(message)};
}

Result<std::optional<std::uint64_t>> Producer::try_send(PreparedFrame& frame) {
  const int fd = frame.buffer.fd();
  auto sent = send_message(connection_.fd(), as_bytes(frame.message), std::span(&fd, 1),
                           IoMode::non_blocking);
  if (!sent) return fail(std::move(sent.error()));
  if (*sent == SendStatus::would_block) return std::optional<std::uint64_t>();
  if (auto ok = drain(); !ok) return fail(std::move(ok.error()));
  if (!errors_.empty()) {
    Error first = std::move(errors_.front());
    errors_.pop_front();
    return fail(std::move(first));
  }
  return std::optional<std::uint64_t>(frame.sequence);
}

Result<std::uint64_t> Producer::publish(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  auto frame = prepare(topic, std::move(buffer), layout, timestamp_ns);
  if (!frame) return fail(std::move(frame.error()));
  const int fd = frame->buffer.fd();
  // Blocking: under block-producer backpressure this waits for the broker to read again.
  auto sent = send_message(connection_.fd(), as_bytes(frame->message), std::span(&fd, 1));
  if (!sent) return fail(std::move(sent.error()));
  if (auto ok = drain(); !ok) return fail(std::move(ok.error()));
  if (!errors_.empty()) {
    Error first = std::move(errors_.front());
    errors_.pop_front();
    return fail(std::move(first));
  }
  return frame->sequence;
}

Result<std::vector<Error>> Producer::poll_errors() {
  if (auto ok = drain(); !ok) return fail(std::move(ok.error()));
  std::vector<Error> out(std::make_move_iterator(errors_.begin()),
                         std::make_move_iterator(errors_.end()));
  errors_.clear();
  return out;
}

Status Producer::drain() {
  for (;;) {
    auto m = connection_.receive(IoMode::non_blocking);
    if (!m) return fail(std::move(m.error()));
    if (m->status == RecvStatus::would_block) return {};
    auto ok = decode_message<proto::Message>(connection_.message(*m),
                                             [&](proto::Message::Reader r) -> Status {
                                               if (r.isError())
                                                 errors_.push_back(broker_error(r.getError()));
                                               return {};
                                             });
    if (!ok) return ok;
  }
}

}  // namespace shmfd
