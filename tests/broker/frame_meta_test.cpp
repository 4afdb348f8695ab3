// Frame metadata (protocol version 5, issue 34): the rules, each field round-tripping through
// the broker with sealed and pool frames, what a hostile producer's metadata gets (a named
// refusal), and what an older consumer sees (nothing new).
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <variant>

#include "shmfd/consumer.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/channels.hpp"
#include "support/program.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kAll = static_cast<std::uint32_t>(FrameFlag::discontinuity) |
                               static_cast<std::uint32_t>(FrameFlag::corrupted) |
                               static_cast<std::uint32_t>(FrameFlag::delta_unit) |
                               static_cast<std::uint32_t>(FrameFlag::gap) |
                               static_cast<std::uint32_t>(FrameFlag::marker);

Layout image(std::uint32_t w, std::uint32_t h) {
  return *image_layout(PixelFormat::rgba8, w, h);
}

// --- The rules, as check_frame_meta and check_topic_options apply them everywhere. ---

TEST(FrameMetaRules, AFrameWithoutMetadataPassesEveryTopic) {
  EXPECT_TRUE(check_frame_meta({}, {}, blob_layout(16)));
  EXPECT_TRUE(FrameMeta{}.empty());
}

TEST(FrameMetaRules, EachRuleIsRefusedWithItsReason) {
  TopicOptions topic;
  topic.max_header_bytes = 8;
  const std::array<std::byte, 9> nine{};
  struct Case {
    const char* what;
    FrameMeta meta;
    Layout layout;
    const char* says;
  };
  FrameMeta unknown_flag;
  unknown_flag.flags = 1u << 5;
  FrameMeta pts_none;
  pts_none.pts = std::numeric_limits<std::uint64_t>::max();
  FrameMeta big_header;
  big_header.header = nine;
  FrameMeta crop_on_blob;
  crop_on_blob.crop = Crop{0, 0, 1, 1};
  FrameMeta crop_outside;
  crop_outside.crop = Crop{60, 0, 5, 4};
  FrameMeta crop_empty;
  crop_empty.crop = Crop{0, 0, 0, 4};
  FrameMeta crop_wraps;
  crop_wraps.crop = Crop{0xffffffffu, 0, 2, 1};
  const std::array<Case, 7> cases{{
      {"unknown flag", unknown_flag, blob_layout(16), "unknown flags 0x20"},
      {"pts of all ones", pts_none, blob_layout(16), "pts 2^64-1"},
      {"header too big", big_header, blob_layout(16), "a user header of 9 bytes"},
      {"crop on a blob", crop_on_blob, blob_layout(16), "not an image"},
      {"crop outside", crop_outside, image(64, 48), "outside the 64x48 image"},
      {"empty crop", crop_empty, image(64, 48), "is empty"},
      {"crop that wraps", crop_wraps, image(64, 48), "outside"},
  }};
  for (const Case& c : cases) {
    const Status ok = check_frame_meta(c.meta, topic, c.layout);
    ASSERT_FALSE(ok) << c.what;
    EXPECT_TRUE(ok.error().is(Errc::invalid_metadata)) << c.what;
    EXPECT_NE(ok.error().message().find(c.says), std::string::npos)
        << c.what << ": " << ok.error().message();
  }
  TopicOptions required;
  required.timestamps_required = true;
  EXPECT_FALSE(check_frame_meta({}, required, blob_layout(16)));
  FrameMeta dts_only;
  dts_only.dts = 5;
  EXPECT_TRUE(check_frame_meta(dts_only, required, blob_layout(16)));
}

TEST(FrameMetaRules, TheEdgesThatAreAllowed) {
  TopicOptions topic;
  topic.max_header_bytes = kMaxUserHeaderBytes;
  const std::vector<std::byte> full(kMaxUserHeaderBytes);
  FrameMeta meta;
  meta.pts = 0;
  meta.dts = std::numeric_limits<std::uint64_t>::max() - 1;
  meta.duration = 0;
  meta.flags = kAll;
  meta.crop = Crop{0, 0, 64, 48};  // the whole image
  meta.header = full;
  EXPECT_TRUE(check_frame_meta(meta, topic, image(64, 48)));
  meta.crop = Crop{63, 47, 1, 1};  // the last pixel
  EXPECT_TRUE(check_frame_meta(meta, topic, image(64, 48)));
}

TEST(FrameMetaRules, TopicOptions) {
  EXPECT_TRUE(check_topic_options({}));
  TopicOptions o;
  o.max_header_bytes = kMaxUserHeaderBytes + 1;
  EXPECT_FALSE(check_topic_options(o));
  o = {};
  o.header_schema = std::string(kMaxHeaderSchemaLength + 1, 'a');
  EXPECT_FALSE(check_topic_options(o));
  o.header_schema = std::string("a\0b", 3);
  EXPECT_FALSE(check_topic_options(o));
  o.header_schema = "myapp.Boxes/2";
  o.frame_rate = {30, 0};
  EXPECT_FALSE(check_topic_options(o));
  o.frame_rate = {30000, 1001};
  EXPECT_TRUE(check_topic_options(o));
}

TEST(FrameMetaRules, FlagNames) {
  EXPECT_EQ(flag_names(0), "none");
  EXPECT_EQ(flag_names(static_cast<std::uint32_t>(FrameFlag::discontinuity) |
                       static_cast<std::uint32_t>(FrameFlag::delta_unit)),
            "discontinuity|delta_unit");
  EXPECT_EQ(flag_names(kAll | 0x100u), "discontinuity|corrupted|delta_unit|gap|marker|0x100");
}

// --- Through the broker. ---

// Sealed frames and pool frames through the broker, and pool frames on a channel.
enum class Path { sealed, pool, channel };

class FrameMetaTest_ChannelPage : public testing::BrokerFixture {};

class FrameMetaTest : public testing::BrokerFixture, public ::testing::WithParamInterface<Path> {
 protected:
  bool pool() const { return GetParam() != Path::sealed; }
  Channels channels() const {
    return GetParam() == Path::channel ? Channels::automatic : Channels::off;
  }
};

FrameMeta full_meta(std::span<const std::byte> header) {
  FrameMeta meta;
  meta.pts = 1'000'000'000;
  meta.dts = 966'666'667;
  meta.duration = 33'333'333;
  meta.flags = static_cast<std::uint32_t>(FrameFlag::discontinuity) |
               static_cast<std::uint32_t>(FrameFlag::marker);
  meta.crop = Crop{8, 4, 48, 40};
  meta.header = header;
  return meta;
}

TEST_P(FrameMetaTest, EveryFieldRoundTrips) {
  auto consumer = Consumer::connect(socket(), "viewer", channels());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam", 8, Backpressure::block_producer));
  auto producer = Producer::connect(socket(), "camera", channels());
  ASSERT_TRUE(producer);
  TopicOptions options;
  options.max_header_bytes = 64;
  options.header_schema = "test.Boxes/1";
  options.frame_rate = {30, 1};
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::image,
                                  pool() ? Guarantee::pool : Guarantee::sealed, options));
  const Layout layout = image(64, 48);
  std::array<std::byte, 64> header{};
  for (std::size_t i = 0; i < header.size(); ++i) header[i] = static_cast<std::byte>(i * 7);
  const FrameMeta sent = full_meta(header);
  std::optional<std::uint32_t> pool_id;
  if (pool()) {
    // Four slots: a consumer may hold only some of a pool's slots (its pool window), and this
    // one holds the first frame while it reads the second.
    auto p = producer->create_pool("cam", *layout_extent(layout), 4);
    ASSERT_TRUE(p) << p.error().message();
    pool_id = *p;
  }
  if (GetParam() == Path::channel) {
    ASSERT_TRUE(testing::channels_open(*producer, {&*consumer}, 1));
  }
  auto publish = [&](const FrameMeta& meta) -> Result<std::uint64_t> {
    if (pool_id) {
      auto slot = producer->acquire(*pool_id);
      if (!slot) return fail(std::move(slot.error()));
      return producer->publish("cam", *slot, layout, meta);
    }
    auto buffer = producer->allocate("cam", layout);
    if (!buffer) return fail(std::move(buffer.error()));
    return producer->publish("cam", std::move(*buffer), layout, meta);
  };
  ASSERT_TRUE(publish(sent));
  ASSERT_TRUE(publish(FrameMeta{}));  // and one without: empty on arrival

  auto first = consumer->receive_for(5s);
  ASSERT_TRUE(first && *first && std::holds_alternative<Frame>(**first));
  const Frame& frame = std::get<Frame>(**first);
  const FrameMeta& got = frame.meta();
  EXPECT_EQ(got.pts, sent.pts);
  EXPECT_EQ(got.dts, sent.dts);
  EXPECT_EQ(got.duration, sent.duration);
  EXPECT_EQ(got.flags, sent.flags);
  EXPECT_TRUE(got.has(FrameFlag::marker));
  EXPECT_EQ(got.crop, sent.crop);
  ASSERT_EQ(got.header.size(), header.size());
  EXPECT_TRUE(std::equal(got.header.begin(), got.header.end(), header.begin()));
  EXPECT_NE(got.header.data(), header.data()) << "the frame keeps its own copy";

  auto second = consumer->receive_for(5s);
  ASSERT_TRUE(second && *second && std::holds_alternative<Frame>(**second));
  EXPECT_TRUE(std::get<Frame>(**second).meta().empty());

  const auto declared = consumer->topic_options("cam");
  ASSERT_TRUE(declared) << "no TopicAdvertised";
  EXPECT_EQ(*declared, options);
  EXPECT_EQ(consumer->channel_refusals(), 0U);
  if (GetParam() == Path::channel) {
    EXPECT_EQ(producer->channels(), 1U);
  }
}

TEST_P(FrameMetaTest, TheLibraryRefusesWhatTheBrokerWouldBeforeSending) {
  auto producer = Producer::connect(socket(), "camera", Channels::off);
  ASSERT_TRUE(producer);
  TopicOptions options;
  options.max_header_bytes = 4;
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::image,
                                  pool() ? Guarantee::pool : Guarantee::sealed, options));
  const Layout layout = image(64, 48);
  std::array<std::byte, 5> header{};
  FrameMeta meta;
  meta.header = header;
  Result<std::uint64_t> sent = 0;
  if (pool()) {
    auto p = producer->create_pool("cam", *layout_extent(layout), 2);
    ASSERT_TRUE(p);
    auto slot = producer->acquire(*p);
    ASSERT_TRUE(slot);
    sent = producer->publish("cam", *slot, layout, meta);
    ASSERT_FALSE(sent);
    EXPECT_EQ(producer->free_slots(*p), 1U) << "the refused frame's slot is still this side's";
    ASSERT_TRUE(producer->discard(*slot));
  } else {
    auto buffer = producer->allocate("cam", layout);
    ASSERT_TRUE(buffer);
    sent = producer->publish("cam", std::move(*buffer), layout, meta);
    ASSERT_FALSE(sent);
  }
  EXPECT_TRUE(sent.error().is(Errc::invalid_metadata)) << sent.error().message();
  TopicOptions bad;
  bad.frame_rate = {1, 0};
  const Status advertised = producer->advertise("other", LayoutKind::image, Guarantee::sealed, bad);
  ASSERT_FALSE(advertised);
  EXPECT_TRUE(advertised.error().is(Errc::invalid_metadata));
}

INSTANTIATE_TEST_SUITE_P(EveryPath, FrameMetaTest,
                         ::testing::Values(Path::sealed, Path::pool, Path::channel),
                         [](const auto& p) {
                           return p.param == Path::sealed ? "sealed"
                                  : p.param == Path::pool ? "pool"
                                                          : "poolOnChannel";
                         });

// --- A producer that rewrites its channel page (docs/PROTOCOL.md section 15, Channels). ---

// The producer's own writable mapping of its channel page in this process (the consumer's is
// read-only): the test plays a producer that writes its page behind the library's back.
std::byte* own_producer_page() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("shmfd:channel-producer") == std::string::npos) continue;
    if (line.find(" rw-s ") == std::string::npos) continue;
    return reinterpret_cast<std::byte*>(std::stoull(line.substr(0, line.find('-')), nullptr, 16));
  }
  return nullptr;
}

TEST_F(FrameMetaTest_ChannelPage, AHostileEntryIsRefusedAndAReadFrameNeverChanges) {
  auto consumer = Consumer::connect(socket(), "viewer", Channels::automatic);
  ASSERT_TRUE(consumer && consumer->subscribe("cam", 4, Backpressure::block_producer));
  auto producer = Producer::connect(socket(), "camera", Channels::automatic);
  ASSERT_TRUE(producer);
  TopicOptions options;
  options.max_header_bytes = 16;
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::image, Guarantee::pool, options));
  const Layout layout = image(64, 48);
  auto pool = producer->create_pool("cam", *layout_extent(layout), 4);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(testing::channels_open(*producer, {&*consumer}, 1));
  std::byte* page = own_producer_page();
  ASSERT_NE(page, nullptr);
  std::uint32_t capacity = 0;
  std::uint32_t meta_bytes = 0;
  std::memcpy(&capacity, page + 8, 4);
  std::memcpy(&meta_bytes, page + 16, 4);
  ASSERT_EQ(meta_bytes, 64U) << "the broker asks for entries of 48 + 16 bytes, rounded to 64";
  const auto entry = [&](std::uint32_t index) {
    return page + 256 + std::size_t{capacity} * 64 + (index % capacity) * meta_bytes;
  };
  const std::array<std::byte, 4> header{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  FrameMeta meta;
  meta.crop = Crop{0, 0, 64, 48};
  meta.header = header;
  const auto publish = [&] {
    auto slot = producer->acquire(*pool);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(producer->publish("cam", *slot, layout, meta));
  };

  // Frame 1: its crop rewritten after the library wrote it, to reach past the image.
  publish();
  const std::uint32_t wide = 65;
  std::memcpy(entry(0) + 40, &wide, 4);  // crop width
  // Frame 2: honest. It arrives; frame 1 is refused by name.
  publish();
  auto got = consumer->receive_for(5s);
  ASSERT_TRUE(got && *got && std::holds_alternative<Frame>(**got));
  const Frame& frame = std::get<Frame>(**got);
  EXPECT_EQ(frame.sequence(), 2U);
  EXPECT_EQ(consumer->channel_refusals(), 1U);
  // The header of the frame read, rewritten in the page: the frame shows what was validated.
  std::memset(entry(1) + 48, 0xee, 4);
  const std::uint32_t huge = 1000;
  std::memcpy(entry(1) + 28, &huge, 4);
  ASSERT_EQ(frame.meta().header.size(), 4U);
  EXPECT_TRUE(std::equal(header.begin(), header.end(), frame.meta().header.begin()));
  EXPECT_EQ(frame.meta().crop, meta.crop);
  // The refused frame's slot came back: every slot but the one held can be acquired.
  std::vector<Slot> slots;
  for (int i = 0; i < 3; ++i) {
    auto slot = producer->try_acquire(*pool);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(*slot) << "slot " << i << " of 3 is still held";
    slots.push_back(std::move(**slot));
  }
  for (const Slot& slot : slots) ASSERT_TRUE(producer->discard(slot));
}

// --- A producer that speaks the protocol by hand, and lies. ---

class FrameMetaWireTest : public testing::BrokerFixture {
 protected:
  // A raw producer of `topic` (blob, sealed) with a header of at most 8 bytes.
  testing::RawClient producer(const std::string& topic, bool image_kind = false) {
    auto c = testing::RawClient::greeted(socket(), "liar");
    c.send([&](proto::Message::Builder m) {
      auto a = m.initAdvertise();
      a.setTopic(topic);
      a.setKind(image_kind ? proto::LayoutKind::IMAGE : proto::LayoutKind::BLOB);
      a.setGuarantee(proto::Guarantee::SEALED);
      a.initOptions().setMaxHeaderBytes(8);
    });
    EXPECT_TRUE(c.next().is(proto::Message::ADVERTISED));
    return c;
  }
  // Publishes a sealed buffer of `layout`, with the metadata `fill` writes.
  template <typename Fill>
  void publish(testing::RawClient& c, const std::string& topic, std::uint64_t sequence,
               const Layout& layout, Fill fill) {
    auto buffer = WritableBuffer::create(topic, *layout_extent(layout));
    ASSERT_TRUE(buffer);
    auto sealed = std::move(*buffer).seal();
    ASSERT_TRUE(sealed);
    const int fd = sealed->fd();
    c.send(
        [&](proto::Message::Builder m) {
          auto p = m.initPublish();
          p.setTopic(topic);
          auto f = p.initFrame();
          f.setFd(0);
          f.setSequence(sequence);
          f.setTimestampNs(1);
          layout_to_proto(layout, f.initLayout());
          fill(f.initMeta());
        },
        {fd});
  }
};

TEST_F(FrameMetaWireTest, EachLieIsRefusedByNameAndReachesNoConsumer) {
  auto consumer = Consumer::connect(socket(), "victim", Channels::off);
  ASSERT_TRUE(consumer && consumer->subscribe("lies"));
  auto liar = producer("lies", true);
  const Layout layout = image(32, 16);
  struct Lie {
    const char* what;
    std::function<void(proto::FrameMeta::Builder)> fill;
    const char* says;
  };
  const std::array<std::byte, 9> nine{};
  const std::vector<Lie> lies{
      {"unknown flags", [](auto m) { m.setFlags(0x80000000u); }, "unknown flags"},
      {"a header over the topic's 8 bytes",
       [&](auto m) {
         m.setHeader(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(nine.data()), 9));
       },
       "a user header of 9 bytes"},
      {"a crop outside the image",
       [](auto m) {
         auto c = m.initCrop();
         c.setX(30);
         c.setWidth(4);
         c.setHeight(1);
       },
       "outside the 32x16 image"},
  };
  std::uint64_t sequence = 0;
  for (const Lie& lie : lies) {
    publish(liar, "lies", ++sequence, layout, lie.fill);
    auto r = liar.next_not_slot_free();
    ASSERT_TRUE(r.is_error(proto::ErrorCode::INVALID_METADATA)) << lie.what << ": " << r;
    EXPECT_NE(r.message.find(lie.says), std::string::npos) << lie.what << ": " << r.message;
    EXPECT_EQ(r.sequence, sequence);
  }
  auto nothing = consumer->receive_for(200ms);
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing) << "a refused frame reached the consumer";
}

TEST_F(FrameMetaWireTest, AnOlderConsumerSeesNoNewField) {
  auto old = testing::RawClient(socket(), 4, "old");
  ASSERT_TRUE(old.next().is(proto::Message::WELCOME));
  old.send([](proto::Message::Builder m) {
    auto s = m.initSubscribe();
    s.setTopic("meta");
    s.setQueueDepth(4);
  });
  ASSERT_TRUE(old.next().is(proto::Message::SUBSCRIBED));
  auto p = producer("meta");
  publish(p, "meta", 1, blob_layout(64), [](auto m) { m.setPts(42); });
  auto r = old.next();
  ASSERT_TRUE(r.is(proto::Message::DELIVER))
      << r << " (a version-4 client gets no TopicAdvertised)";
  EXPECT_FALSE(r.has_meta);
}

// A channel's producer page has metadata entries only when both ends speak version 5: the
// broker asks for entries of 48 + the topic's header size, rounded up to 64 bytes, from a
// version-5 pair, and for none when the consumer (or the producer) is older.
TEST_F(FrameMetaWireTest, ChannelsHaveMetadataEntriesOnlyBetweenTwoClientsOfVersion5) {
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  TopicOptions options;
  options.max_header_bytes = 100;
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool, options));
  ASSERT_TRUE(producer->create_pool("cam", 4096, 4));
  for (const std::uint32_t version : {4U, 5U}) {
    testing::RawClient c(socket(), 0);
    c.send([&](proto::Message::Builder m) {
      auto hello = m.initHello();
      hello.setVersion(version);
      hello.setClientName("raw-channels");
      hello.setChannels(true);
    });
    ASSERT_TRUE(c.next().is(proto::Message::WELCOME));
    c.send([](proto::Message::Builder m) {
      auto s = m.initSubscribe();
      s.setTopic("cam");
      s.setQueueDepth(4);
    });
    testing::Received r;
    do {
      r = c.next();
    } while (!r.closed && !r.timed_out && !r.is(proto::Message::CHANNEL_REQUEST));
    ASSERT_TRUE(r.is(proto::Message::CHANNEL_REQUEST)) << r << " (version " << version << ")";
    EXPECT_EQ(r.meta_bytes, version >= 5 ? 192U : 0U) << "version " << version;
  }
}

}  // namespace
}  // namespace shmfd

namespace shmfd {
namespace {

// shmfd-sub --verbose prints each frame's metadata and the topic's options.
TEST_F(FrameMetaWireTest, ShmfdSubVerbosePrintsTheFields) {
  testing::Program sub({SHMFD_SUB_BIN, "--socket", socket(), "--topic", "shown", "--frames", "1",
                        "--verbose", "--block"},
                       {"SHMFD_CHANNELS=0"});
  ASSERT_TRUE(sub.wait_for("subscribed")) << sub.output();
  auto producer = Producer::connect(socket(), "camera", Channels::off);
  ASSERT_TRUE(producer);
  TopicOptions options;
  options.max_header_bytes = 16;
  options.header_schema = "test.Shown/1";
  options.frame_rate = {25, 1};
  ASSERT_TRUE(producer->advertise("shown", LayoutKind::image, Guarantee::sealed, options));
  const Layout layout = image(64, 48);
  const std::array<std::byte, 3> header{};
  FrameMeta meta;
  meta.pts = 40'000'000;
  meta.duration = 40'000'000;
  meta.flags = static_cast<std::uint32_t>(FrameFlag::delta_unit);
  meta.crop = Crop{0, 0, 64, 40};
  meta.header = header;
  auto buffer = producer->allocate("shown", layout);
  ASSERT_TRUE(buffer);
  ASSERT_TRUE(producer->publish("shown", std::move(*buffer), layout, meta));
  EXPECT_EQ(sub.wait(), 0) << sub.output();
  const std::string out = sub.output();
  EXPECT_NE(out.find("topic 'shown': user header up to 16 B, schema 'test.Shown/1', frame rate "
                     "25/1"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("seq 1 "), std::string::npos) << out;
  EXPECT_NE(out.find("pts 40000000 dts - duration 40000000 flags delta_unit crop 0,0 64x40 "
                     "header 3 B"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace shmfd
