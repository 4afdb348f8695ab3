// Frame: a received frame's mapping and its release, from whatever thread drops it.
#include "consumer_channels.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/wire/intake.hpp"

namespace shmfd {

Frame& Frame::operator=(Frame&& other) noexcept {
  if (this != &other) {
    release();
    connection_ = std::move(other.connection_);
    topic_ = std::move(other.topic_);
    sequence_ = other.sequence_;
    timestamp_ns_ = other.timestamp_ns_;
    dropped_ = other.dropped_;
    layout_ = std::move(other.layout_);
    mapping_ = std::move(other.mapping_);
    shared_mapping_ = std::move(other.shared_mapping_);
    pool_ = std::move(other.pool_);
    view_ = other.view_;
    channel_ = std::move(other.channel_);
    pool_id_ = other.pool_id_;
    slot_ = other.slot_;
    of_call_ = other.of_call_;
    meta_ = std::move(other.meta_);  // its header moves with it
  }
  return *this;
}

Frame::~Frame() {
  release();
}

std::shared_ptr<const void> Frame::keep_mapped() {
  if (pool_) return pool_;
  if (!shared_mapping_) shared_mapping_ = std::make_shared<const Mapping>(std::move(mapping_));
  return shared_mapping_;
}

// Safe on any thread: a channel's release ring takes one writer at a time, and a socket
// release is queued while the consumer's owner is in a call (which sends it), and sent from
// here, non-blocking, only while the consumer is idle (SharedConnection::release).
void Frame::release() noexcept {
  view_ = {};
  mapping_.reset();
  shared_mapping_.reset();
  pool_.reset();
  if (channel_) {
    channel_->release(pool_id_, slot_, sequence_);
    channel_.reset();
  }
  if (connection_) {
    // A call's frame goes by its number, with no topic (docs/PROTOCOL.md, section 16).
    connection_->release(of_call_ ? std::string() : std::move(topic_), sequence_);
    connection_.reset();
  }
}

namespace detail {

Status map_own_frame(Frame& out, proto::Frame::Reader frame, std::vector<UniqueFd>& fds,
                     Guarantee guarantee) {
  auto accepted = accept_frame(frame, fds, guarantee);
  if (!accepted) return fail(std::move(accepted.error()));
  auto mapping = Mapping::map(accepted->fd.get(), static_cast<std::size_t>(accepted->verified.size),
                              Access::read_only);
  if (!mapping) return fail(std::move(mapping.error()));
  FrameBuilder::own(out, std::move(*mapping));
  return {};
}

}  // namespace detail
}  // namespace shmfd
