#include "shmfd/layout.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace shmfd {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct FormatCase {
  PixelFormat format;
  std::uint32_t width, height;
  std::uint64_t expected_size;
};

class StandardImageLayout : public ::testing::TestWithParam<FormatCase> {};

TEST_P(StandardImageLayout, IsValidAndHasTheKnownSize) {
  const FormatCase c = GetParam();
  auto sut = image_layout(c.format, c.width, c.height);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->plane_count, plane_count(c.format));
  auto extent = validate_layout(*sut, c.expected_size);
  ASSERT_TRUE(extent) << extent.error().message();
  EXPECT_EQ(*extent, c.expected_size);
  // One byte less and it no longer fits.
  auto small = validate_layout(*sut, c.expected_size - 1);
  ASSERT_FALSE(small);
  EXPECT_TRUE(small.error().is(Errc::layout_out_of_bounds)) << small.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, StandardImageLayout,
    ::testing::Values(FormatCase{PixelFormat::rgba8, 1920, 1080, 1920 * 1080 * 4},
                      FormatCase{PixelFormat::bgra8, 3840, 2160, 3840 * 2160 * 4},
                      FormatCase{PixelFormat::rgb24, 641, 481, 641 * 481 * 3},
                      FormatCase{PixelFormat::nv12, 1920, 1080, 1920 * 1080 * 3 / 2},
                      FormatCase{PixelFormat::nv12, 3, 3, 9 + 2 * 2 * 2},  // odd: UV rounds up
                      FormatCase{PixelFormat::i420, 1920, 1080, 1920 * 1080 * 3 / 2},
                      FormatCase{PixelFormat::i420, 5, 3, 15 + 3 * 2 * 2},
                      FormatCase{PixelFormat::yuyv, 1280, 720, 1280 * 720 * 2},
                      FormatCase{PixelFormat::gray8, 7, 5, 35},
                      FormatCase{PixelFormat::gray16, 640, 480, 640 * 480 * 2}),
    [](const ::testing::TestParamInfo<FormatCase>& p) {
      return std::string(to_string(p.param.format)) + "_" + std::to_string(p.param.width) + "x" +
             std::to_string(p.param.height);
    });

TEST(ImageLayoutTest, RowAlignmentPadsStridesAndAlignsPlanes) {
  auto sut = image_layout(PixelFormat::nv12, 100, 10, 64);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->planes[0].stride, 128U);
  EXPECT_EQ(sut->planes[1].offset % 64, 0U);
  EXPECT_EQ(sut->planes[1].stride, 128U);
  EXPECT_TRUE(validate_layout(*sut, 128 * 10 + 128 * 5));
  EXPECT_FALSE(image_layout(PixelFormat::rgba8, 8, 8, 3));  // not a power of two
}

TEST(ImageLayoutTest, RefusesEmptyImagesAndOddYuyvWidths) {
  auto zero = image_layout(PixelFormat::rgba8, 0, 1080);
  ASSERT_FALSE(zero);
  EXPECT_TRUE(zero.error().is(Errc::layout_bad_dimensions));
  auto odd = image_layout(PixelFormat::yuyv, 641, 480);
  ASSERT_FALSE(odd);
  EXPECT_TRUE(odd.error().is(Errc::layout_bad_dimensions));
  EXPECT_NE(odd.error().message().find("odd"), std::string::npos);
}

TEST(ImageLayoutTest, RefusesUnknownFormat) {
  ImageLayout sut{static_cast<PixelFormat>(99), 16, 16, 1, {}};
  auto r = layout_extent(sut);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_unknown_format));
}

TEST(ImageLayoutTest, RefusesWrongPlaneCount) {
  auto sut = *image_layout(PixelFormat::nv12, 64, 64);
  sut.plane_count = 1;
  auto r = layout_extent(sut);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_plane_count));
  EXPECT_NE(r.error().message().find("has 1 planes, the format has 2"), std::string::npos);
}

TEST(ImageLayoutTest, RefusesStrideSmallerThanARow) {
  auto sut = *image_layout(PixelFormat::rgba8, 64, 64);
  sut.planes[0].stride = 64 * 4 - 1;
  auto r = layout_extent(sut);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_stride_too_small)) << r.error().message();
}

TEST(ImageLayoutTest, RefusesPlaneSmallerThanItsRows) {
  auto sut = *image_layout(PixelFormat::i420, 64, 64);
  sut.planes[2].size -= 1;
  auto r = layout_extent(sut);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_plane_too_small)) << r.error().message();
}

TEST(ImageLayoutTest, AcceptsLastRowWithoutPadding) {
  auto sut = *image_layout(PixelFormat::gray8, 10, 4);
  sut.planes[0].stride = 16;
  sut.planes[0].size = 16 * 3 + 10;
  auto r = validate_layout(sut, 58);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, 58U);
}

TEST(ImageLayoutTest, RefusesOverlappingPlanes) {
  auto sut = *image_layout(PixelFormat::nv12, 64, 64);
  sut.planes[1].offset = sut.planes[0].size - 1;
  auto r = layout_extent(sut);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_planes_overlap)) << r.error().message();
}

TEST(ImageLayoutTest, RefusesStrideTimesHeightThatWraps) {
  // stride * (height - 1) wraps to a small number in unchecked 64-bit arithmetic.
  auto sut = *image_layout(PixelFormat::gray8, 16, 3);
  sut.planes[0].stride = (kMax / 2) + 2;
  sut.planes[0].size = 64;
  auto r = validate_layout(sut, 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_overflow)) << r.error().message();
}

TEST(ImageLayoutTest, RefusesOffsetPlusSizeThatWraps) {
  auto sut = *image_layout(PixelFormat::gray8, 16, 16);
  sut.planes[0].offset = kMax - 10;
  auto r = validate_layout(sut, 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_overflow)) << r.error().message();
}

TEST(ImageLayoutTest, RefusesPlaneBeyondTheBuffer) {
  auto sut = *image_layout(PixelFormat::rgba8, 16, 16);
  sut.planes[0].offset = 1;
  auto r = validate_layout(sut, 16 * 16 * 4);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_out_of_bounds));
  EXPECT_NE(r.error().message().find("1025 bytes but the buffer holds 1024"), std::string::npos);
}

TEST(AudioLayoutTest, InterleavedAndPlanarSizes) {
  auto interleaved = audio_layout(SampleFormat::s16, 48000, 2, 480, false);
  ASSERT_TRUE(interleaved);
  EXPECT_EQ(*layout_extent(*interleaved), 480U * 2 * 2);
  auto planar = audio_layout(SampleFormat::f32, 48000, 6, 1024, true);
  ASSERT_TRUE(planar);
  EXPECT_EQ(planar->plane_stride, 4096U);
  EXPECT_EQ(*layout_extent(*planar), 6U * 4096);
}

TEST(AudioLayoutTest, RefusesBadShapes) {
  auto none = audio_layout(SampleFormat::s16, 48000, 0, 480, false);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(Errc::layout_bad_dimensions));
  EXPECT_FALSE(audio_layout(SampleFormat::s16, 0, 2, 480, false));

  AudioLayout squeezed = *audio_layout(SampleFormat::f32, 48000, 2, 1024, true);
  squeezed.plane_stride = 4095;
  auto r = layout_extent(squeezed);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_stride_too_small));

  AudioLayout huge = *audio_layout(SampleFormat::f64, 48000, 2, 16, false);
  huge.frames = kMax / 4;
  auto o = layout_extent(huge);
  ASSERT_FALSE(o);
  EXPECT_TRUE(o.error().is(Errc::layout_overflow));

  AudioLayout unknown = *audio_layout(SampleFormat::u8, 8000, 1, 16, false);
  unknown.format = static_cast<SampleFormat>(77);
  EXPECT_TRUE(layout_extent(unknown).error().is(Errc::layout_unknown_format));
}

TEST(TensorLayoutTest, ContiguousRowMajor) {
  const std::vector<std::uint64_t> shape{2, 3, 4};
  auto sut = tensor_layout(DType::f32, shape);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->strides[0], 48U);
  EXPECT_EQ(sut->strides[1], 16U);
  EXPECT_EQ(sut->strides[2], 4U);
  EXPECT_EQ(*layout_extent(*sut), 96U);
}

TEST(TensorLayoutTest, StridedViewsScalarsAndEmptyTensors) {
  const std::vector<std::uint64_t> shape{4, 4};
  TensorLayout transposed = *tensor_layout(DType::u8, shape);
  std::swap(transposed.strides[0], transposed.strides[1]);
  EXPECT_EQ(*layout_extent(transposed), 16U);

  TensorLayout scalar = *tensor_layout(DType::f64, {});
  EXPECT_EQ(*layout_extent(scalar), 8U);

  const std::vector<std::uint64_t> empty_shape{0, 1000};
  TensorLayout empty = *tensor_layout(DType::f32, empty_shape);
  empty.offset = 64;
  EXPECT_EQ(*layout_extent(empty), 64U);
}

TEST(TensorLayoutTest, RefusesOutOfBoundsOverflowAndRank) {
  const std::vector<std::uint64_t> shape{10, 10};
  TensorLayout sut = *tensor_layout(DType::i16, shape);
  sut.strides[0] = 21;  // last element at 9*21 + 9*2 = 207, ends at 209
  auto r = validate_layout(sut, 200);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::layout_out_of_bounds));

  sut.strides[0] = kMax / 4;
  auto o = layout_extent(sut);
  ASSERT_FALSE(o);
  EXPECT_TRUE(o.error().is(Errc::layout_overflow));

  const std::vector<std::uint64_t> too_big{1ULL << 40, 1ULL << 40};
  EXPECT_TRUE(tensor_layout(DType::f64, too_big).error().is(Errc::layout_overflow));

  const std::vector<std::uint64_t> rank9(9, 2);
  EXPECT_TRUE(tensor_layout(DType::u8, rank9).error().is(Errc::layout_bad_dimensions));
  TensorLayout bad_rank = sut;
  bad_rank.rank = 9;
  EXPECT_TRUE(layout_extent(bad_rank).error().is(Errc::layout_bad_dimensions));
}

TEST(BlobLayoutTest, BoundsAndOverflow) {
  EXPECT_EQ(*validate_layout(blob_layout(100), 100), 100U);
  EXPECT_TRUE(validate_layout(blob_layout(101), 100).error().is(Errc::layout_out_of_bounds));
  EXPECT_TRUE(validate_layout(BlobLayout{kMax, 2}, 100).error().is(Errc::layout_overflow));
}

}  // namespace
}  // namespace shmfd
