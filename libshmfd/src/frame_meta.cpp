// Frame metadata's rules (frame_meta.hpp), one function for the producer's library, the broker
// and a consumer reading a channel.
#include "shmfd/frame_meta.hpp"

#include <array>
#include <cstdio>
#include <string_view>
#include <utility>
#include <variant>

namespace shmfd {
namespace {

std::string n(std::uint64_t v) {
  return std::to_string(v);
}

constexpr std::array<std::pair<FrameFlag, std::string_view>, 5> kFlagNames{{
    {FrameFlag::discontinuity, "discontinuity"},
    {FrameFlag::corrupted, "corrupted"},
    {FrameFlag::delta_unit, "delta_unit"},
    {FrameFlag::gap, "gap"},
    {FrameFlag::marker, "marker"},
}};

Status check_time(const std::optional<std::uint64_t>& value, const char* what) {
  if (value && *value == kNoTime) {
    return fail(Errc::invalid_metadata,
                std::string("frame meta: ") + what + " 2^64-1 is kept for \"none\" on the wire");
  }
  return {};
}

}  // namespace

std::string flag_names(std::uint32_t flags) {
  std::string out;
  for (const auto& [flag, name] : kFlagNames) {
    if ((flags & static_cast<std::uint32_t>(flag)) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
  }
  if (const std::uint32_t unknown = flags & ~kKnownFrameFlags; unknown != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", unknown);
    if (!out.empty()) out += '|';
    out += hex;
  }
  return out.empty() ? "none" : out;
}

Status check_topic_options(const TopicOptions& options) {
  if (options.max_header_bytes > kMaxUserHeaderBytes) {
    return fail(Errc::invalid_metadata, "topic options: a user header of " +
                                            n(options.max_header_bytes) + " bytes exceeds " +
                                            n(kMaxUserHeaderBytes));
  }
  if (options.header_schema.size() > kMaxHeaderSchemaLength) {
    return fail(Errc::invalid_metadata, "topic options: the header schema's name is " +
                                            n(options.header_schema.size()) + " bytes, beyond " +
                                            n(kMaxHeaderSchemaLength));
  }
  for (std::size_t i = 0; i < options.header_schema.size(); ++i) {
    const auto c = static_cast<unsigned char>(options.header_schema[i]);
    if (c < 0x20 || c > 0x7e) {
      return fail(Errc::invalid_metadata, "topic options: byte " + n(i) +
                                              " of the header schema's name (" + n(c) +
                                              ") is not printable ASCII");
    }
  }
  if (options.frame_rate.den == 0 && options.frame_rate.num != 0) {
    return fail(Errc::invalid_metadata, "topic options: frame rate " + n(options.frame_rate.num) +
                                            "/0 (a rate is num/den with den > 0, or 0/0)");
  }
  return {};
}

Status check_frame_meta(const FrameMeta& meta, const TopicOptions& topic, const Layout& layout) {
  if (const std::uint32_t unknown = meta.flags & ~kKnownFrameFlags; unknown != 0) {
    return fail(Errc::invalid_metadata,
                "frame meta: unknown flags " + flag_names(unknown) + " (reserved)");
  }
  if (auto ok = check_time(meta.pts, "pts"); !ok) return ok;
  if (auto ok = check_time(meta.dts, "dts"); !ok) return ok;
  if (auto ok = check_time(meta.duration, "duration"); !ok) return ok;
  if (topic.timestamps_required && !meta.pts && !meta.dts) {
    return fail(Errc::invalid_metadata,
                "frame meta: no pts and no dts, and the topic requires timestamps");
  }
  if (meta.header.size() > topic.max_header_bytes) {
    return fail(Errc::invalid_metadata, "frame meta: a user header of " + n(meta.header.size()) +
                                            " bytes, and the topic allows " +
                                            n(topic.max_header_bytes));
  }
  if (meta.crop) {
    const Crop& c = *meta.crop;
    const auto* image = std::get_if<ImageLayout>(&layout);
    if (image == nullptr) {
      return fail(Errc::invalid_metadata, "frame meta: a crop on a frame that is not an image");
    }
    if (c.width == 0 || c.height == 0) {
      return fail(Errc::invalid_metadata,
                  "frame meta: crop " + n(c.width) + "x" + n(c.height) + " is empty");
    }
    // 64-bit sums of 32-bit values: no overflow.
    if (std::uint64_t{c.x} + c.width > image->width ||
        std::uint64_t{c.y} + c.height > image->height) {
      return fail(Errc::invalid_metadata, "frame meta: crop " + n(c.width) + "x" + n(c.height) +
                                              " at (" + n(c.x) + ", " + n(c.y) +
                                              ") lies outside the " + n(image->width) + "x" +
                                              n(image->height) + " image");
    }
  }
  return {};
}

}  // namespace shmfd
