#include "shmfd/wire/wire.hpp"

#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "support/hostile_messages.hpp"

namespace shmfd {
namespace {

// Encodes `layout` in a Publish message, decodes it back through the untrusted path.
Result<Layout> round_trip(const Layout& layout) {
  capnp::MallocMessageBuilder builder;
  auto publish = builder.initRoot<proto::Message>().initPublish();
  publish.setTopic("cam0");
  auto frame = publish.initFrame();
  frame.setFd(0);
  layout_to_proto(layout, frame.initLayout());
  const auto words = encode_message(builder);
  return decode_message<proto::Message>(words.bytes(), [](proto::Message::Reader m) {
    return layout_from_proto(m.getPublish().getFrame().getLayout());
  });
}

template <typename T>
T as(const Result<Layout>& r) {
  if (!r) {
    ADD_FAILURE() << r.error().message();
    return T{};
  }
  EXPECT_TRUE(std::holds_alternative<T>(*r));
  return std::holds_alternative<T>(*r) ? std::get<T>(*r) : T{};
}

// Reads every field a broker would read; a malformed message must fail, never crash.
Result<std::uint64_t> read_everything(std::span<const std::byte> bytes) {
  return decode_message<proto::Message>(
      bytes, [](proto::Message::Reader m) -> Result<std::uint64_t> {
        if (m.which() != proto::Message::PUBLISH) return 0;
        auto frame = m.getPublish().getFrame();
        auto layout = layout_from_proto(frame.getLayout());
        if (!layout) return fail(std::move(layout.error()));
        return m.getPublish().getTopic().size() + frame.getSequence();
      });
}

TEST(WireTest, ImageLayoutsSurviveTheRoundTrip) {
  auto layout = *image_layout(PixelFormat::i420, 1920, 1080, 32);
  const auto sut = as<ImageLayout>(round_trip(layout));
  EXPECT_EQ(sut.format, PixelFormat::i420);
  EXPECT_EQ(sut.width, 1920U);
  EXPECT_EQ(sut.height, 1080U);
  ASSERT_EQ(sut.plane_count, 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sut.planes[i].offset, layout.planes[i].offset);
    EXPECT_EQ(sut.planes[i].stride, layout.planes[i].stride);
    EXPECT_EQ(sut.planes[i].size, layout.planes[i].size);
  }
}

TEST(WireTest, AudioTensorAndBlobLayoutsSurviveTheRoundTrip) {
  auto audio = *audio_layout(SampleFormat::f32, 44100, 2, 512, true);
  const auto a = as<AudioLayout>(round_trip(audio));
  EXPECT_EQ(a.format, SampleFormat::f32);
  EXPECT_EQ(a.sample_rate, 44100U);
  EXPECT_EQ(a.channels, 2U);
  EXPECT_EQ(a.frames, 512U);
  EXPECT_TRUE(a.planar);
  EXPECT_EQ(a.plane_stride, audio.plane_stride);

  const std::vector<std::uint64_t> shape{1, 3, 224, 224};
  auto tensor = *tensor_layout(DType::bf16, shape);
  const auto t = as<TensorLayout>(round_trip(tensor));
  EXPECT_EQ(t.dtype, DType::bf16);
  ASSERT_EQ(t.rank, 4U);
  EXPECT_EQ(t.shape, tensor.shape);
  EXPECT_EQ(t.strides, tensor.strides);

  const auto b = as<BlobLayout>(round_trip(BlobLayout{16, 1000}));
  EXPECT_EQ(b.offset, 16U);
  EXPECT_EQ(b.size, 1000U);
}

TEST(WireTest, EnumValuesOrderMatchesTheSchema) {
  // C++ enums are converted to the wire by value: the orders must agree.
  EXPECT_EQ(static_cast<int>(proto::PixelFormat::GRAY16), static_cast<int>(PixelFormat::gray16));
  EXPECT_EQ(static_cast<int>(proto::SampleFormat::F64), static_cast<int>(SampleFormat::f64));
  EXPECT_EQ(static_cast<int>(proto::DType::F64), static_cast<int>(DType::f64));
}

TEST(WireTest, UnknownEnumFromThePeerIsRefused) {
  capnp::MallocMessageBuilder builder;
  auto image = builder.initRoot<proto::Layout>().initImage();
  image.setFormat(static_cast<proto::PixelFormat>(256));  // would alias rgba8 in a uint8_t
  image.setWidth(4);
  image.setHeight(4);
  image.initPlanes(1);
  auto sut = layout_from_proto(builder.getRoot<proto::Layout>().asReader());
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::layout_unknown_format));
}

TEST(WireTest, ProtocolEnumsConvertBothWaysAndRefuseUnknownValues) {
  for (auto kind : {LayoutKind::blob, LayoutKind::image, LayoutKind::audio, LayoutKind::tensor}) {
    auto back = layout_kind_from_proto(to_proto(kind));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, kind);
  }
  EXPECT_EQ(to_proto(LayoutKind::image), proto::LayoutKind::IMAGE);
  for (auto policy : {Backpressure::drop_oldest, Backpressure::block_producer}) {
    auto back = backpressure_from_proto(to_proto(policy));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, policy);
  }
  EXPECT_EQ(to_proto(Backpressure::block_producer), proto::Backpressure::BLOCK_PRODUCER);
  for (auto level : {Guarantee::sealed, Guarantee::pool}) {
    auto back = guarantee_from_proto(to_proto(level));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, level);
  }

  auto kind = layout_kind_from_proto(static_cast<proto::LayoutKind>(4));
  ASSERT_FALSE(kind);
  EXPECT_TRUE(kind.error().is(Errc::malformed_message));
  EXPECT_EQ(kind.error().message(), "unknown layout kind 4");
  auto policy = backpressure_from_proto(static_cast<proto::Backpressure>(2));
  ASSERT_FALSE(policy);
  EXPECT_EQ(policy.error().message(), "unknown backpressure policy 2");
  auto level = guarantee_from_proto(static_cast<proto::Guarantee>(7));
  ASSERT_FALSE(level);
  EXPECT_EQ(level.error().message(), "unknown guarantee level 7");
}

TEST(WireTest, EncodedMessagesOwnTheirWordsAndMoveCleanly) {
  ControlMessageBuilder builder;
  builder.initRoot<proto::Message>().initRelease().setTopic("t");
  EncodedMessage first = encode_message(builder);
  ASSERT_FALSE(first.empty());
  const auto size = first.bytes().size();
  EXPECT_EQ(size % sizeof(MessageWord), 0U);
  EncodedMessage second = std::move(first);
  EXPECT_TRUE(first.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty, by contract
  EXPECT_EQ(first.bytes().size(), 0U);
  EXPECT_EQ(second.bytes().size(), size);
  auto topic = decode_message<proto::Message>(second.bytes(), [](proto::Message::Reader m) {
    return Result<std::string>(text_of(m.getRelease().getTopic()));
  });
  ASSERT_TRUE(topic) << topic.error().message();
  EXPECT_EQ(*topic, "t");
}

TEST(WireTest, TooManyPlanesOrMismatchedTensorListsAreRefused) {
  capnp::MallocMessageBuilder builder;
  auto image = builder.initRoot<proto::Layout>().initImage();
  image.initPlanes(5);
  auto planes = layout_from_proto(builder.getRoot<proto::Layout>().asReader());
  ASSERT_FALSE(planes);
  EXPECT_TRUE(planes.error().is(Errc::layout_plane_count));

  auto tensor = builder.initRoot<proto::Layout>().initTensor();
  tensor.initShape(3);
  tensor.initStrides(2);
  auto dims = layout_from_proto(builder.getRoot<proto::Layout>().asReader());
  ASSERT_FALSE(dims);
  EXPECT_TRUE(dims.error().is(Errc::layout_bad_dimensions));
}

TEST(WireTest, FdIndexesAreChecked) {
  EXPECT_EQ(*fd_index(0, 1), 0U);
  auto sut = fd_index(1, 1);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::fd_index_out_of_range));
  EXPECT_NE(sut.error().message().find("fd #1 but the datagram carried 1 fds"), std::string::npos);
}

TEST(WireTest, PartialWordsAndTruncationAreMalformed) {
  auto words = testing::tensor_publish_words();
  auto bytes = words.bytes();
  EXPECT_TRUE(read_everything(bytes));

  auto odd = read_everything(bytes.first(bytes.size() - 3));
  ASSERT_FALSE(odd);
  EXPECT_TRUE(odd.error().is(Errc::malformed_message));

  auto cut = read_everything(bytes.first(bytes.size() - 8));
  ASSERT_FALSE(cut);
  EXPECT_TRUE(cut.error().is(Errc::malformed_message)) << cut.error().message();

  std::vector<MessageWord> padded(words.words().begin(), words.words().end());
  padded.push_back(0);
  auto trailing = read_everything(
      {reinterpret_cast<const std::byte*>(padded.data()), padded.size() * sizeof(MessageWord)});
  ASSERT_FALSE(trailing);
  EXPECT_TRUE(trailing.error().is(Errc::malformed_message));
}

TEST(WireTest, HostileMessagesAreMalformedNotACrashOrALongWalk) {
  for (const auto& [name, bytes] : testing::hostile_messages()) {
    SCOPED_TRACE(name);
    // What a broker reads, and a walk of the whole message (which follows every pointer, so a
    // cycle or an amplified list would run on without the reader limits).
    auto read = read_everything(bytes);
    auto walk = decode_message<proto::Message>(bytes, [](proto::Message::Reader m) {
      return Result<std::uint64_t>(m.totalSize().wordCount);
    });
    EXPECT_TRUE(!read || !walk) << "accepted";
    if (!walk) {
      EXPECT_TRUE(walk.error().is(Errc::malformed_message)) << walk.error().message();
    }
    if (!read) {
      EXPECT_TRUE(read.error().is(Errc::malformed_message) ||
                  read.error().message().find("layout") != std::string::npos)
          << read.error().message();
    }
  }
}

TEST(WireTest, TraversalIsBoundedByTheMessagesOwnSize) {
  // The same 200-word list read 30 times is 6000 words of traversal from a ~210-word message:
  // more than four times its size, so the reader stops, where the default limit (64 Mi words)
  // would let a small message make the reader walk without end.
  capnp::MallocMessageBuilder builder;
  auto tensor =
      builder.initRoot<proto::Message>().initPublish().initFrame().initLayout().initTensor();
  tensor.initShape(200);
  const auto words = encode_message(builder);
  auto reread = decode_message<proto::Message>(words.bytes(), [](proto::Message::Reader m) {
    std::uint64_t sum = 0;
    for (int i = 0; i < 30; ++i)
      sum += m.getPublish().getFrame().getLayout().getTensor().getShape().size();
    return Result<std::uint64_t>(sum);
  });
  ASSERT_FALSE(reread);
  EXPECT_TRUE(reread.error().is(Errc::malformed_message)) << reread.error().message();
  auto once = decode_message<proto::Message>(words.bytes(), [](proto::Message::Reader m) {
    return Result<std::uint64_t>(
        m.getPublish().getFrame().getLayout().getTensor().getShape().size());
  });
  ASSERT_TRUE(once) << once.error().message();
  EXPECT_EQ(*once, 200U);
}

TEST(WireTest, RandomBytesNeverCrashTheDecoder) {
  std::mt19937_64 rng(20261122);
  std::size_t accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::vector<capnp::word> words(1 + rng() % 32);
    for (auto& w : words) {
      const std::uint64_t v = rng();
      std::memcpy(static_cast<void*>(&w), &v, 8);
    }
    if (i % 2 == 0) {  // a plausible segment table makes the decoder look deeper
      const std::uint32_t header[2] = {0, static_cast<std::uint32_t>(words.size() - 1)};
      std::memcpy(words.data(), header, 8);
    }
    auto r = read_everything(
        {reinterpret_cast<const std::byte*>(words.data()), words.size() * sizeof(capnp::word)});
    if (r)
      ++accepted;
    else
      EXPECT_TRUE(r.error().is(Errc::malformed_message) ||
                  r.error().message().find("layout") != std::string::npos ||
                  r.error().message().find("image") != std::string::npos ||
                  r.error().message().find("tensor") != std::string::npos ||
                  r.error().message().find("audio") != std::string::npos)
          << r.error().message();
  }
  EXPECT_LT(accepted, 5000U);
}

}  // namespace
}  // namespace shmfd
