// ConsumerChannels: a consumer's end of what the broker set up for it, with its state: the
// pools it mapped (PoolAttach), the channels it reads (section 14 of docs/PROTOCOL.md), and
// the layouts their producers defined. It turns a descriptor on a channel, or a pool frame
// from the socket, into a Frame, and answers for every check on the way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker_link.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/wire/channel.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::detail {

struct PoolView {
  std::string topic;
  std::uint64_t producer = 0;  // the broker's client id of the producer that registered it
  Mapping mapping;
  std::uint64_t slot_size = 0;
  std::uint32_t slot_count = 0;
};

// A pool the broker attached (PoolAttach and its fd): checked as a pool (section 8) and mapped
// read-only, once, for every frame of it. Consumers and callers and servers share it.
Result<std::shared_ptr<PoolView>> map_pool(proto::PoolAttach::Reader attach,
                                           std::vector<UniqueFd>& fds);

// A channel this consumer reads. Shared with the frames read from it, which release into its
// page from whatever thread drops them, also after the channel ended for the consumer.
struct ChannelIn {
  ChannelIn(std::uint32_t channel, std::string of, ChannelReader r)
      : id(channel), topic(std::move(of)), reader(std::move(r)) {}
  // Any thread: the release ring has one writer at a time.
  void release(std::uint32_t pool, std::uint32_t slot, std::uint64_t sequence) noexcept;

  std::uint32_t id;
  std::string topic;
  ChannelReader reader;  // next() on the owner's thread; release() under the mutex
  std::mutex release_mutex;
  std::uint64_t producer = 0;        // the broker's client id of its producer
  std::uint64_t dropped_before = 0;  // dropped by the broker before the channel opened
  std::uint32_t depth = 0;           // the subscription's, as the broker granted it
  Backpressure policy = Backpressure::drop_oldest;
  bool active = true;                 // still read: not unsubscribed, not ended
  std::optional<EndOfStream> ending;  // the producer's end, delivered once the ring is empty
  // What its producer declared of the topic: a node of the consumer's TopicOptionsMap, which
  // only ever grows and updates its values in place (found on the first frame with metadata).
  const TopicOptions* options = nullptr;
  bool parked = false;          // a descriptor names what the socket has not told yet
  std::uint32_t parked_at = 0;  // the doorbell's count then
};

// What Frame::dropped() says for frame `sequence` of `topic`, whose path counted `reported`
// frames dropped so far (the Consumer's subscriptions know the rest).
using Accounting = std::function<std::uint64_t(const std::string& topic, std::uint64_t sequence,
                                               std::uint64_t reported)>;

// What each topic's producer declared (TopicAdvertised, version 5).
using TopicOptionsMap = std::map<std::string, TopicOptions, std::less<>>;

// A received frame's metadata, checked again against what this consumer was told of its topic
// (a topic it was told nothing of allows the largest header), so that a frame never shows what
// its topic does not allow: the broker checked it, but a channel's producer page is the
// producer's word alone.
Status check_received_meta(const FrameMeta& meta, const TopicOptionsMap& options,
                           std::string_view topic, const Layout& layout);
Status check_received_meta(const FrameMeta& meta, const TopicOptions* options,
                           const Layout& layout);

class ConsumerChannels {
 public:
  // The broker's PoolAttach: the pool verified at the pool level and mapped read-only, once.
  Status attach_pool(proto::PoolAttach::Reader attach, std::vector<UniqueFd>& fds);
  // ChannelOpen for the page `asked` (nullopt: never asked for, a protocol violation).
  Status open(proto::ChannelOpen::Reader open, std::optional<AskedChannel> asked,
              std::vector<UniqueFd>& fds);
  void close(std::uint32_t channel);
  Status define_layout(proto::DefineLayout::Reader define);
  // An EndOfStream for `topic`: true if a channel of it still carries frames, which come first
  // (the end is then delivered from next()); else the producer's pools and layouts go.
  bool end_stream(EndOfStream& end, std::uint64_t producer);
  // The consumer unsubscribed: the channels and pools of `topic` are not read any more (frames
  // held keep their mapping, and release into their channel's page).
  void unsubscribed(std::string_view topic);

  // A frame of pool `pool`, slot `slot` from the socket, or an error naming what is wrong.
  Result<Frame> pool_frame(std::uint32_t pool, std::uint32_t slot, Frame frame);
  // The next event on the channels, round robin: a frame, or a channel's end of stream.
  // A frame whose metadata breaks its topic's rules (`options`) is refused as a descriptor is.
  std::optional<Event> next(const TopicOptionsMap& options, std::uint32_t bell_count,
                            std::uint32_t bell_seen, const Accounting& account);
  // The readers a wait sleeps on (at most 62, beside the doorbell and the release word).
  std::vector<ChannelReader*> readers();
  std::uint64_t refusals() const noexcept;

 private:
  void stop(std::string_view topic, std::uint64_t producer);
  void forget_pools(std::string_view topic, std::uint64_t producer);

  std::map<std::uint32_t, std::shared_ptr<const PoolView>> pools_;
  std::vector<std::shared_ptr<ChannelIn>> channels_;
  // By producer (its broker client id): a topic's next producer numbers its layouts afresh,
  // and its pools and layouts may arrive before the end of the last one's stream.
  std::map<std::uint64_t, FrameShapes> shapes_;
  std::map<std::uint64_t, std::map<std::uint32_t, Layout>> layouts_;
  std::size_t next_channel_ = 0;       // round-robin position
  std::uint64_t refusals_before_ = 0;  // of channels no longer read
};

// Frame's private fields, set by the consumer's parts and the services' (friend of Frame).
struct FrameBuilder {
  static Frame make() { return Frame(); }
  static std::string& topic(Frame& f) { return f.topic_; }
  static void set(Frame& f, std::uint64_t sequence, std::uint64_t timestamp_ns, Layout layout) {
    f.sequence_ = sequence;
    f.timestamp_ns_ = timestamp_ns;
    f.layout_ = std::move(layout);
  }
  static const Layout& layout(const Frame& f) { return f.layout_; }
  static void dropped(Frame& f, std::uint64_t dropped) { f.dropped_ = dropped; }
  // The frame's own copy of `meta`: its header is copied out of the message (or page) once,
  // and what the frame shows is that copy.
  static void meta(Frame& f, const FrameMeta& meta) {
    // One allocation for the usual header (up to 64 bytes), two for a longer one.
    std::unique_ptr<Frame::OwnMeta> own(new Frame::OwnMeta);
    own->meta = meta;
    if (meta.header.size() <= own->inline_header.size()) {
      std::copy(meta.header.begin(), meta.header.end(), own->inline_header.begin());
      own->meta.header = std::span<const std::byte>(own->inline_header.data(), meta.header.size());
    } else {
      own->header.assign(meta.header.begin(), meta.header.end());
      own->meta.header = own->header;
    }
    f.meta_ = std::move(own);
  }
  static void own(Frame& f, Mapping mapping) {
    f.mapping_ = std::move(mapping);
    f.view_ = f.mapping_.bytes();
  }
  static void in_pool(Frame& f, std::shared_ptr<const PoolView> pool, std::uint32_t slot) {
    f.view_ = pool->mapping.bytes().subspan(slot * pool->slot_size, pool->slot_size);
    f.pool_ = std::move(pool);
  }
  static void of_call(Frame& f) { f.of_call_ = true; }
  static bool on_channel(const Frame& f) { return f.channel_ != nullptr; }
  static void from_socket(Frame& f, std::shared_ptr<SharedConnection> connection) {
    f.connection_ = std::move(connection);
  }
  static void from_channel(Frame& f, std::shared_ptr<ChannelIn> channel, std::uint32_t pool,
                           std::uint32_t slot) {
    f.channel_ = std::move(channel);
    f.pool_id_ = pool;
    f.slot_ = slot;
  }
};

// A frame in a buffer of its own from a message (a Deliver, a Request, a Response): accepted
// (accept_frame) at `guarantee`, which the broker verified it at, and mapped read-only into
// `out`; the fd is closed, the mapping keeps the pages.
Status map_own_frame(Frame& out, proto::Frame::Reader frame, std::vector<UniqueFd>& fds,
                     Guarantee guarantee);

}  // namespace shmfd::detail
