// Frames to and from their DDS forms: shmfd's Frame type (shmfd_frame.idl) and ROS 2's
// sensor_msgs/msg/Image (ros2_image.idl). What comes from the network is untrusted: every
// conversion into shmfd validates the layout against the bytes that came with it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ros2_image.h"
#include "shmfd/frame_meta.hpp"
#include "shmfd/layout.hpp"
#include "shmfd_frame.h"

namespace shmfd::bridge {

// The DDS layout of a shmfd layout, with the storage its sequences point into (so it stays
// where it was filled: not copied, not moved).
struct DdsLayout {
  shmfd_bridge_Layout layout{};
  std::array<shmfd_bridge_Plane, kMaxPlanes> planes{};
  std::array<std::uint64_t, kMaxTensorRank> shape{};
  std::array<std::uint64_t, kMaxTensorRank> strides{};
  DdsLayout() = default;
  DdsLayout(const DdsLayout&) = delete;
  DdsLayout& operator=(const DdsLayout&) = delete;
};

// Fills `out` with `layout` (which validate_layout accepted).
void to_dds(const Layout& layout, DdsLayout& out);

// The shmfd layout a sample describes, checked against `data_size` bytes: unknown enum values,
// too many planes or dimensions, and every rule of validate_layout are refused, with the reason.
Result<Layout> from_dds(const shmfd_bridge_Layout& in, std::uint64_t data_size);

// A frame's metadata in its DDS form, with the storage its crop points into. The header points
// into the frame's own copy (not copied).
struct DdsMeta {
  shmfd_bridge_FrameMeta meta{};
  shmfd_bridge_Crop crop{};
  DdsMeta() = default;
  DdsMeta(const DdsMeta&) = delete;
  DdsMeta& operator=(const DdsMeta&) = delete;
};
void to_dds(const FrameMeta& meta, DdsMeta& out);
void to_dds(const TopicOptions& options, shmfd_bridge_TopicOptions& out);

// The topic options a sample declares, checked (check_topic_options), naming what is wrong.
Result<TopicOptions> from_dds(const shmfd_bridge_TopicOptions& in);
// The metadata a sample carries, checked against its topic's `options` and its `layout`
// (check_frame_meta), naming what is wrong. Its header points into the sample.
Result<FrameMeta> from_dds(const shmfd_bridge_FrameMeta& in, const TopicOptions& options,
                           const Layout& layout);

// ROS 2's encoding of a packed pixel format ("rgba8", "mono16", "yuv422_yuy2"...), or nullopt
// for the planar formats (NV12, I420), which sensor_msgs/Image cannot carry.
std::optional<std::string_view> ros2_encoding(PixelFormat format);
// The pixel format of a ROS 2 encoding shmfd carries, or nullopt.
std::optional<PixelFormat> from_ros2_encoding(std::string_view encoding);

// The image layout of a ROS 2 Image: one plane of `step` bytes a row, checked against its data.
Result<ImageLayout> from_ros2(const sensor_msgs_msg_dds__Image_& image);

}  // namespace shmfd::bridge
