/// @file
/// What a frame may carry beside its bytes and its layout (protocol version 5): stream
/// timestamps, a duration, flags, a crop rectangle and an opaque user header; and what a topic
/// declares about them. The capture time (Frame::timestamp_ns(), CLOCK_MONOTONIC) stays what it
/// is: pts and dts are the producer's stream time, not a clock.
///
/// Every rule is checked by check_frame_meta(): by the producer's library before a frame leaves,
/// by the broker before a consumer sees it, and by a consumer for what it reads on a channel.
/// Layouts and metadata are values; these functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "shmfd/error.hpp"
#include "shmfd/layout.hpp"

namespace shmfd {

/// A frame's flags, as bits of FrameMeta::flags. Other bits are reserved: a frame with one is
/// refused.
enum class FrameFlag : std::uint32_t {
  discontinuity = 1u << 0,  ///< the stream is not continuous before this frame (a seek, a reset)
  corrupted = 1u << 1,      ///< the producer knows the contents are damaged
  delta_unit = 1u << 2,     ///< not decodable on its own (not a keyframe)
  gap = 1u << 3,            ///< stands for a gap: no real data, only its timing
  marker = 1u << 4,         ///< the end of a unit the media defines (an RTP marker, say)
};
/// Every bit a FrameFlag has.
inline constexpr std::uint32_t kKnownFrameFlags = 0x1f;
/// The largest user header a topic may declare.
inline constexpr std::uint32_t kMaxUserHeaderBytes = 4096;
/// The longest header schema name.
inline constexpr std::size_t kMaxHeaderSchemaLength = 255;

/// How every wire form (protocol messages, channel pages, the DDS bridge's sample) writes an
/// absent time: all ones, which is therefore never a value (check_frame_meta() refuses it).
inline constexpr std::uint64_t kNoTime = ~std::uint64_t{0};
/// A time in its wire form: the value, or kNoTime for none.
constexpr std::uint64_t time_to_wire(const std::optional<std::uint64_t>& t) noexcept {
  return t ? *t : kNoTime;
}
/// A time from its wire form: none for kNoTime.
constexpr std::optional<std::uint64_t> time_from_wire(std::uint64_t t) noexcept {
  if (t == kNoTime) return std::nullopt;
  return t;
}

/// The rectangle of an image that is meant to be shown: pixels [x, x + width) of rows
/// [y, y + height). It lies inside the image.
struct Crop {
  std::uint32_t x = 0;       ///< first column
  std::uint32_t y = 0;       ///< first row
  std::uint32_t width = 0;   ///< columns, at least 1
  std::uint32_t height = 0;  ///< rows, at least 1
  /// Equal when every field is.
  friend bool operator==(const Crop&, const Crop&) = default;
};

/// What a frame carries beside its bytes. Every field is optional, and a frame without any
/// costs nothing more than before version 5.
struct FrameMeta {
  std::optional<std::uint64_t> pts;       ///< presentation time, ns of the stream's time
  std::optional<std::uint64_t> dts;       ///< decoding time, ns of the stream's time
  std::optional<std::uint64_t> duration;  ///< ns
  std::uint32_t flags = 0;                ///< FrameFlag bits
  std::optional<Crop> crop;               ///< image layouts only
  /// Opaque bytes for the application (a request id, boxes, ...), at most its topic's
  /// TopicOptions::max_header_bytes. A publisher's span must stay valid until publish()
  /// returns; a received frame's points into the frame.
  std::span<const std::byte> header;

  /// Whether `flag` is set.
  bool has(FrameFlag flag) const noexcept {
    return (flags & static_cast<std::uint32_t>(flag)) != 0;
  }
  /// Whether no field is set: such a frame travels as before version 5.
  bool empty() const noexcept {
    return !pts && !dts && !duration && flags == 0 && !crop && header.empty();
  }
};

/// A nominal frame rate, num/den frames per second; 0/0 when unknown.
struct FrameRate {
  std::uint32_t num = 0;  ///< frames ...
  std::uint32_t den = 0;  ///< ... per this many seconds
  /// Equal when both fields are (30/1 and 60/2 differ).
  friend bool operator==(const FrameRate&, const FrameRate&) = default;
};

/// What a topic declares about its frames' metadata, when it is advertised (version 5).
struct TopicOptions {
  /// The largest user header a frame may carry: 0 (the default: none) to kMaxUserHeaderBytes.
  std::uint32_t max_header_bytes = 0;
  /// What the header holds, for people and tools ("myapp.Detections/2"); empty: unnamed. At most
  /// kMaxHeaderSchemaLength printable ASCII bytes.
  std::string header_schema;
  /// The nominal frame rate, for consumers that describe the stream (shmfdsrc's caps).
  FrameRate frame_rate;
  /// Every frame must carry a pts or a dts.
  bool timestamps_required = false;
  /// Equal when every field is.
  friend bool operator==(const TopicOptions&, const TopicOptions&) = default;
};

/// Checks a topic's options: Errc::invalid_metadata naming the rule broken (a header larger than
/// kMaxUserHeaderBytes, a schema name too long or not printable ASCII, a rate with a
/// denominator of 0 and a numerator that is not).
Status check_topic_options(const TopicOptions& options);

/// Checks a frame's metadata against its topic's options and its layout: Errc::invalid_metadata
/// naming the rule broken (flags no FrameFlag has, a timestamp or duration of 2^64-1, which the
/// wire keeps for "none", a crop on a layout that is not an image or outside it, a header larger
/// than the topic allows, no pts nor dts on a topic that requires one).
Status check_frame_meta(const FrameMeta& meta, const TopicOptions& topic, const Layout& layout);

/// The names of the flags set in `flags`, "discontinuity|delta_unit", "none" for 0, with the
/// unknown bits in hex: for logs and shmfd-sub --verbose.
std::string flag_names(std::uint32_t flags);

}  // namespace shmfd
