// Cap'n Proto on the wire: encode a message into one datagram, decode a datagram from an
// untrusted peer under tight reader limits, and convert layouts between the schema and C++.
//
// A hostile peer can send anything: pointers out of bounds, deep nesting, amplification
// ("traversal bombs"), unknown enum values. Cap'n Proto reports these by throwing kj::Exception,
// lazily, when a field is read. decode_message therefore runs the caller's whole reading of the
// message inside one guard and turns any such exception into Errc::malformed_message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "shmfd/error.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/proto/layout.capnp.h"
#include "shmfd/proto/protocol.capnp.h"
#include "shmfd/wire/message_buffer.hpp"
#include "shmfd/wire/protocol.hpp"
#include "shmfd/wire/transport.hpp"

namespace shmfd {

class Connection;

// Reader limits for an untrusted message of `message_words` words: traversal of at most four
// times what it sent (plus a little), so no message makes the reader walk more than a small
// multiple of its own size (lists of empty elements, pointers shared by many fields); nesting
// of 16, where the schema needs 7 (Message > Publish > Frame > Layout > Image > planes > Plane)
// and has no recursive type, far below any danger to the stack.
capnp::ReaderOptions untrusted_reader_options(std::size_t message_words) noexcept;

namespace detail {
struct FirstSegment {
  capnp::word words[128]{};  // zeroed, as capnp requires of a first segment
};
}  // namespace detail

// The builder for shmfd's control messages. Its first segment (1 KiB) lives inside the object,
// so a typical message (Publish, Deliver, Release: well under 100 words) costs no allocation,
// where capnp::MallocMessageBuilder callocs and zeroes 8 KiB for each; a larger message
// (BrokerState) grows on the heap as usual.
class ControlMessageBuilder : private detail::FirstSegment, public capnp::MallocMessageBuilder {
 public:
  ControlMessageBuilder() : capnp::MallocMessageBuilder(kj::arrayPtr(words, std::size(words))) {}
};

// The builder's message as one flat, unpacked datagram.
EncodedMessage encode_message(capnp::MessageBuilder& builder);

// Encodes and sends `builder` with `fds` (blocking).
Result<SendStatus> send_capnp(int socket, capnp::MessageBuilder& builder,
                              std::span<const int> fds = {});
// Encodes `message` and sends it on `connection`, as Connection::send sends bytes.
Result<SendStatus> send_message(Connection& connection, capnp::MessageBuilder& message,
                                std::span<const int> fds = {}, IoMode mode = IoMode::blocking);

namespace detail {
Status check_flat_message(std::span<const std::byte> bytes);
Error malformed(const kj::Exception& e);
}  // namespace detail

// Decodes `bytes` (one datagram; must be 8-byte aligned, as MessageBuffer and EncodedMessage
// are) as a T and calls
// `read(T::Reader)`, which returns a Result<R>. Malformed input of any kind, including what
// `read` only meets deep inside the message, is Errc::malformed_message.
template <typename T, typename F>
auto decode_message(std::span<const std::byte> bytes, F&& read)
    -> decltype(read(std::declval<typename T::Reader>())) {
  if (auto ok = detail::check_flat_message(bytes); !ok) return fail(std::move(ok.error()));
  try {
    kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(bytes.data()),
                                          bytes.size() / sizeof(capnp::word));
    capnp::FlatArrayMessageReader reader(words, untrusted_reader_options(words.size()));
    if (reader.getEnd() != words.end()) {
      return fail(Errc::malformed_message, "message: " + std::to_string(bytes.size()) +
                                               " bytes, but the message inside ends earlier");
    }
    return read(reader.getRoot<T>());
  } catch (const kj::Exception& e) {
    return fail(detail::malformed(e));
  }
}

// Layout conversion. layout_from_proto rejects what C++ cannot represent (unknown enum values,
// more than 4 planes, more than 8 dimensions, shape and strides of different lengths) but does
// not check the layout against a buffer: use validate_layout for that.
Result<Layout> layout_from_proto(proto::Layout::Reader reader);
void layout_to_proto(const Layout& layout, proto::Layout::Builder builder);

// Frame metadata and topic options (version 5). meta_from_proto's header is a view into the
// message (copy it before the message goes); it checks nothing but what the wire cannot say
// (a crop of 0 size is kept, for check_frame_meta to refuse). A FrameMeta that is empty()
// writes nothing: the caller does not init the field.
FrameMeta meta_from_proto(proto::FrameMeta::Reader reader);
void meta_to_proto(const FrameMeta& meta, proto::FrameMeta::Builder builder);
TopicOptions topic_options_from_proto(proto::TopicOptions::Reader reader);
void topic_options_to_proto(const TopicOptions& options, proto::TopicOptions::Builder builder);

// A Cap'n Proto text as a string_view (valid while the message is), and as a string. Both keep
// its full length: a peer's text may hold NUL bytes, and cStr() would cut the text at the
// first one, so that a check sees less than what is used. Never read wire text with cStr().
inline std::string_view view(capnp::Text::Reader text) {
  return {text.cStr(), text.size()};
}
inline std::string text_of(capnp::Text::Reader text) {
  return std::string(view(text));
}

// An fd index taken from a message, checked against the number of fds the datagram carried.
Result<std::size_t> fd_index(std::uint32_t index, std::size_t fd_count);

}  // namespace shmfd
