// Test support: Cap'n Proto messages crafted to attack a reader. Each is a valid datagram
// (whole words, a segment table) around hostile contents: pointers out of bounds, lists that
// claim half a billion elements without sending any, pointer cycles, absurd segment tables.
// Used by the wire tests, the adversarial broker tests and as seeds for the fuzzers.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "shmfd/layout.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::testing {

using Bytes = std::vector<std::byte>;

inline Bytes to_bytes(const EncodedMessage& words) {
  const auto span = words.bytes();
  return {span.begin(), span.end()};
}

// A well-formed Publish with a one-dimensional u8 tensor layout: the base of the attacks.
inline EncodedMessage tensor_publish_words(const std::string& topic = "t") {
  capnp::MallocMessageBuilder builder;
  auto publish = builder.initRoot<proto::Message>().initPublish();
  publish.setTopic(topic);
  const std::vector<std::uint64_t> shape{7};
  layout_to_proto(*tensor_layout(DType::u8, shape), publish.initFrame().initLayout());
  return encode_message(builder);
}

// The word of `bytes` holding the first list pointer with 8-byte elements and one element
// (the tensor's shape), or -1.
inline std::ptrdiff_t shape_pointer_index(const Bytes& bytes) {
  for (std::size_t i = 8; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t v;
    std::memcpy(&v, bytes.data() + i, 8);
    if ((v & 3) == 1 && ((v >> 32) & 7) == 5 && (v >> 35) == 1) {
      return static_cast<std::ptrdiff_t>(i / 8);
    }
  }
  return -1;
}

inline Bytes patch_word(Bytes bytes, std::ptrdiff_t index, std::uint64_t value) {
  std::memcpy(bytes.data() + index * 8, &value, 8);
  return bytes;
}

inline std::uint64_t word_at(const Bytes& bytes, std::ptrdiff_t index) {
  std::uint64_t v;
  std::memcpy(&v, bytes.data() + index * 8, 8);
  return v;
}

struct HostileMessage {
  std::string name;
  Bytes bytes;
};

inline std::vector<HostileMessage> hostile_messages(const std::string& topic = "t") {
  const Bytes base = to_bytes(tensor_publish_words(topic));
  const std::ptrdiff_t shape = shape_pointer_index(base);
  const std::uint64_t list = word_at(base, shape);
  std::vector<HostileMessage> out;
  out.push_back({"a list pointer a million words out of bounds",
                 patch_word(base, shape, (list & ~std::uint64_t{0xfffffffc}) | (1000000ULL << 2))});
  out.push_back(
      {"a list pointer to just past the segment",
       patch_word(
           base, shape,
           (list & ~std::uint64_t{0xfffffffc}) |
               (static_cast<std::uint64_t>(base.size() / 8 - 1 - static_cast<std::size_t>(shape))
                << 2))});
  // Element size VOID: 2^29-1 elements of nothing (a traversal bomb).
  out.push_back({"a list of 536870911 empty elements",
                 patch_word(base, shape, (list & 0xffffffffULL) | (0x1fffffffULL << 35))});
  // The root pointer (the word after the segment table) aimed at itself, with one pointer
  // field: every pointer followed from the root leads back to the root (a nesting bomb).
  out.push_back({"a root struct whose pointer is itself",
                 patch_word(base, 1, (0x3fffffffULL << 2) | (std::uint64_t{1} << 48))});
  // Segment tables that claim what was not sent.
  {
    Bytes b = base;
    const std::uint32_t header[2] = {0xfffffffeU, 0};
    std::memcpy(b.data(), header, 8);
    out.push_back({"a segment table claiming 4294967295 segments", b});
  }
  {
    Bytes b = base;
    const std::uint32_t header[2] = {0, 0x3fffffffU};
    std::memcpy(b.data(), header, 8);
    out.push_back({"a segment of a billion words in a datagram of a few", b});
  }
  // A far pointer to a landing pad in a segment that does not exist.
  out.push_back({"a far pointer into a missing segment",
                 patch_word(base, shape, 2 | (std::uint64_t{0} << 3) | (7ULL << 32))});
  return out;
}

}  // namespace shmfd::testing
