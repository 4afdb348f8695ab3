// Test support: blob frames whose every byte depends on the sequence number, so a consumer can
// prove it got the right bytes for the right frame.
#pragma once

#include <cstdint>
#include <span>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::testing {

inline std::byte pattern_byte(std::uint64_t sequence, std::size_t i) {
  return static_cast<std::byte>((sequence * 131 + i * 7) & 0xff);
}

// Publishes a blob of `size` bytes filled for `sequence` (which must be the sequence the
// producer assigns next: 1, 2, 3, ... per topic).
inline Result<std::uint64_t> publish_pattern(Producer& producer, const std::string& topic,
                                             std::uint64_t sequence, std::size_t size) {
  const Layout layout = blob_layout(size);
  auto buffer = producer.allocate(topic, layout);
  if (!buffer) return fail(std::move(buffer.error()));
  auto bytes = buffer->bytes();
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = pattern_byte(sequence, i);
  return producer.publish(topic, std::move(*buffer), layout);
}

// True when the frame's blob holds exactly the pattern of its sequence.
inline bool holds_pattern(const Frame& frame) {
  const auto* blob = std::get_if<BlobLayout>(&frame.layout());
  if (blob == nullptr || blob->offset + blob->size > frame.bytes().size()) return false;
  const auto bytes = frame.bytes().subspan(blob->offset, blob->size);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != pattern_byte(frame.sequence(), i)) return false;
  }
  return true;
}

}  // namespace shmfd::testing
