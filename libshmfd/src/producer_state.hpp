// ProducerState: what a Producer is made of (libshmfd's own, behind producer.hpp's pointer):
// the link to the broker, its topics, its pools and their slots, its channels, the credit
// window of sealed frames and the refusals not yet returned. Shared by producer.cpp (topics,
// sealed frames, the broker's messages) and producer_pools.cpp (pool frames).
#pragma once

#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "broker_link.hpp"
#include "pool_slots.hpp"
#include "producer_channels.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::detail {

struct Advertised {
  LayoutKind kind;
  Guarantee level;
  TopicOptions options;
};

// The frame fields of a Publish; timestamp_ns 0 means now (CLOCK_MONOTONIC). An empty `meta`
// writes nothing (the message is what it was before version 5).
void fill_frame(proto::Frame::Builder frame, std::uint64_t sequence, std::uint64_t timestamp_ns,
                const Layout& layout, const FrameMeta& meta);
std::uint64_t monotonic_ns();

struct ProducerState {
  explicit ProducerState(BrokerLink l) : link(std::move(l)) {}

  BrokerLink link;
  std::map<std::string, Advertised, std::less<>> advertised;
  // Whether a topic it advertised requires timestamps (check_meta's one look at `advertised`
  // for a frame without metadata); once set, it stays.
  bool any_timestamps_required = false;
  PoolSlots pools;
  ProducerChannels channels;
  std::map<std::string, std::uint64_t, std::less<>> next_sequence;
  std::deque<Error> errors;  // refusals not returned yet
  // Frames with their own buffer sent and not yet covered by the broker's Credit: at most
  // the connection's publish window, so a producer held back by backpressure waits in
  // publish() instead of filling its socket with sealed buffers.
  std::uint32_t fd_frames_in_flight = 0;

  ProducerState(const ProducerState&) = delete;
  ProducerState& operator=(const ProducerState&) = delete;

  // Made once each: a std::function per frame would cost on the pool path's every frame.
  const HeldOnChannels held = [this](const PoolState& pool, std::uint32_t slot) {
    return channels.holds(pool, slot);
  };
  // A block-producer channel's consumer holds its whole depth: sleep until it releases or the
  // broker speaks, then read the broker.
  const ProducerChannels::Wait wait_for_release = [this](ChannelWriter& w) -> Status {
    ChannelWriter* waiting = &w;
    waitv(std::span(&waiting, 1), link.bell(), link.bell_seen(),
          std::chrono::steady_clock::now() + kSocketCheck);
    return poll();
  };

  // One handler per message kind; answers pass (the wait that asked looks at them).
  Status handle(proto::Message::Reader r, std::vector<UniqueFd>& fds);
  Status on_channel_request(proto::ChannelRequest::Reader request);
  Status on_channel_open(proto::ChannelOpen::Reader open, std::vector<UniqueFd>& fds);
  Status poll() {
    return link.poll(
        [this](proto::Message::Reader r, std::vector<UniqueFd>& f) { return handle(r, f); });
  }
  Status drain() {
    return link.drain(
        [this](proto::Message::Reader r, std::vector<UniqueFd>& f) { return handle(r, f); });
  }
  template <typename Done>
  Status wait_for(Done done) {
    return link.wait_for(
        [this](proto::Message::Reader r, std::vector<UniqueFd>& f) { return handle(r, f); }, done);
  }
  // Sends `message` (with `fds`) and waits for its answer about `topic`: `answer`, or a
  // refusal (an Error of the topic with no sequence), which is returned.
  template <typename Answer>
  Status request(capnp::MessageBuilder& message, std::span<const int> fds, std::string_view topic,
                 Answer answer);

  // Whether `error` is a lost broker this producer has now reconnected to (else: fail).
  Result<bool> recovered(const Error& error);
  Status send_advertise(std::string_view topic, const Advertised& a);
  // Checks `meta` against the topic's options and `layout`, as the broker will: a frame that
  // breaks a rule never leaves (Errc::invalid_metadata), and none is sent to a broker older than
  // version 5, which would not carry it (Errc::invalid_argument).
  Status check_meta(std::string_view topic, const FrameMeta& meta, const Layout& layout) const;
  Result<std::uint32_t> register_pool(std::string_view topic, const PoolBuffer& buffer,
                                      std::size_t slot_size, std::uint32_t slot_count);
  std::uint64_t take_sequence(std::string_view topic);
  void give_back_sequence(std::string_view topic) { --next_sequence.find(topic)->second; }
  Result<std::uint64_t> sent_or_refused(std::uint64_t sequence);
  bool window_full() const noexcept {
    const std::uint32_t window = link.connection().publish_window();
    return window != 0 && fd_frames_in_flight >= window;
  }
  // Stages `slot` as the topic's next frame: its sequence number, and its pool.
  Result<std::pair<std::uint64_t, PoolState*>> stage(std::string_view topic, const Slot& slot,
                                                     const Layout& layout);
  EncodedMessage publish_message(std::string_view topic, const PoolState& pool, const Slot& slot,
                                 std::uint64_t sequence, std::uint64_t timestamp_ns,
                                 const Layout& layout, const FrameMeta& meta);
};

}  // namespace shmfd::detail
