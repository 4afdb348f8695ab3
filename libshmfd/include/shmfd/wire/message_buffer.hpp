// The bytes of control messages, without Cap'n Proto's types: the buffer a message is received
// into, and an encoded message that waits to be sent. wire.hpp writes and reads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace shmfd {

// Control messages are small; 64 KiB bounds any single datagram shmfd reads.
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024;

// Cap'n Proto reads a message in place from 8-byte words, so both types keep their bytes in
// words (wire.cpp checks that a capnp::word is one).
using MessageWord = std::uint64_t;

// A receive buffer aligned for Cap'n Proto, for receive_message and decode_message.
class MessageBuffer {
 public:
  explicit MessageBuffer(std::size_t max_bytes = kMaxMessageBytes)
      : words_((max_bytes + sizeof(MessageWord) - 1) / sizeof(MessageWord)) {}
  std::span<std::byte> bytes() {
    return {reinterpret_cast<std::byte*>(words_.data()), words_.size() * sizeof(MessageWord)};
  }
  std::span<const std::byte> bytes(std::size_t size) const {
    return {reinterpret_cast<const std::byte*>(words_.data()), size};
  }

 private:
  std::vector<MessageWord> words_;
};

// One encoded message (a flat, unpacked Cap'n Proto datagram, from encode_message) that owns
// its bytes. Empty when default-constructed or moved from.
class EncodedMessage {
 public:
  EncodedMessage() = default;
  // `words` words, uninitialised: encode_message writes every one.
  explicit EncodedMessage(std::size_t words)
      : words_(std::make_unique_for_overwrite<MessageWord[]>(words)), size_(words) {}
  EncodedMessage(EncodedMessage&& other) noexcept
      : words_(std::move(other.words_)), size_(std::exchange(other.size_, 0)) {}
  EncodedMessage& operator=(EncodedMessage&& other) noexcept {
    words_ = std::move(other.words_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  bool empty() const noexcept { return size_ == 0; }
  std::span<MessageWord> words() noexcept { return {words_.get(), size_}; }
  std::span<const std::byte> bytes() const noexcept {
    return {reinterpret_cast<const std::byte*>(words_.get()), size_ * sizeof(MessageWord)};
  }

 private:
  std::unique_ptr<MessageWord[]> words_;
  std::size_t size_ = 0;
};

}  // namespace shmfd
