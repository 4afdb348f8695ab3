#include "shmfd/protocol.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <variant>

namespace shmfd {

LayoutKind layout_kind(const Layout& layout) noexcept {
  return std::visit(
      []<typename L>(const L&) {
        if constexpr (std::is_same_v<L, BlobLayout>) return LayoutKind::blob;
        if constexpr (std::is_same_v<L, ImageLayout>) return LayoutKind::image;
        if constexpr (std::is_same_v<L, AudioLayout>) return LayoutKind::audio;
        if constexpr (std::is_same_v<L, TensorLayout>) return LayoutKind::tensor;
      },
      layout);
}

std::string_view to_string(LayoutKind kind) noexcept {
  switch (kind) {
    case LayoutKind::blob:
      return "blob";
    case LayoutKind::image:
      return "image";
    case LayoutKind::audio:
      return "audio";
    case LayoutKind::tensor:
      return "tensor";
  }
  return "unknown";
}

std::string_view to_string(Backpressure policy) noexcept {
  switch (policy) {
    case Backpressure::drop_oldest:
      return "drop-oldest";
    case Backpressure::block_producer:
      return "block-producer";
    case Backpressure::latest:
      return "latest";
  }
  return "unknown";
}

bool is_topic_byte(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '/' || c == ':';
}

Status check_topic_name(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxTopicLength) {
    return fail(Errc::invalid_topic_name, "topic name must be 1 to " +
                                              std::to_string(kMaxTopicLength) + " bytes, got " +
                                              std::to_string(topic.size()));
  }
  for (std::size_t i = 0; i < topic.size(); ++i) {
    const char c = topic[i];
    if (!is_topic_byte(c)) {
      const auto byte = static_cast<unsigned>(static_cast<unsigned char>(c));
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", byte);
      return fail(Errc::invalid_topic_name, "topic name has byte " + std::string(hex) +
                                                " at offset " + std::to_string(i) +
                                                "; a topic name holds only A-Z a-z 0-9 . _ - / :");
    }
  }
  return {};
}

std::string default_socket_path() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (::geteuid() != 0 && runtime != nullptr && runtime[0] == '/') {
    return std::string(runtime) + "/shmfd/broker.sock";
  }
  return "/run/shmfd/broker.sock";
}

}  // namespace shmfd
