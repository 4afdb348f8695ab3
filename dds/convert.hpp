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

// ROS 2's encoding of a packed pixel format ("rgba8", "mono16", "yuv422_yuy2"...), or nullopt
// for the planar formats (NV12, I420), which sensor_msgs/Image cannot carry.
std::optional<std::string_view> ros2_encoding(PixelFormat format);
// The pixel format of a ROS 2 encoding shmfd carries, or nullopt.
std::optional<PixelFormat> from_ros2_encoding(std::string_view encoding);

// The image layout of a ROS 2 Image: one plane of `step` bytes a row, checked against its data.
Result<ImageLayout> from_ros2(const sensor_msgs_msg_dds__Image_& image);

}  // namespace shmfd::bridge
