// CallPools: a caller's or a server's pools for calls (call_pools.hpp).
#include "call_pools.hpp"

#include "producer_state.hpp"

namespace shmfd::detail {

std::optional<Status> CallPools::handle(proto::Message::Reader m, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  switch (m.which()) {
    case M::POOL_REGISTERED:
      if (!registering_ || !view(m.getPoolRegistered().getTopic()).empty()) return std::nullopt;
      answer_ = m.getPoolRegistered().getPool();
      return Status{};
    case M::ERROR: {
      // The refusal of a RegisterPool: no topic, no sequence.
      const auto e = m.getError();
      if (!registering_ || answer_ || !view(e.getTopic()).empty() || e.getSequence() != 0) {
        return std::nullopt;
      }
      answer_ = Result<std::uint32_t>(tl::unexpect, broker_error(e));
      return Status{};
    }
    case M::SLOT_FREE:
      own_.freed(m.getSlotFree().getPool(), m.getSlotFree().getSlot());
      return Status{};
    case M::POOL_ATTACH: {
      const auto attach = m.getPoolAttach();
      auto view = map_pool(attach, fds);
      if (!view) return Status(fail(std::move(view.error()).prefixed("a peer's pool")));
      attached_[attach.getPool()] = std::move(*view);
      return Status{};
    }
    case M::POOL_DETACH:
      // Frames of it still held keep its mapping until they are dropped.
      attached_.erase(m.getPoolDetach().getPool());
      return Status{};
    default:
      return std::nullopt;
  }
}

Result<std::uint32_t> CallPools::register_pool(BrokerLink& link, const Pump& pump,
                                               const PoolBuffer& buffer, std::size_t slot_size,
                                               std::uint32_t slot_count) {
  ControlMessageBuilder message;
  auto reg = message.initRoot<proto::Message>().initRegisterPool();
  reg.setSlotCount(slot_count);
  reg.setSlotSize(slot_size);
  reg.setFd(0);
  const int fd = buffer.fd();
  if (auto sent = link.send(message, std::span(&fd, 1)); !sent)
    return fail(std::move(sent.error()));
  registering_ = true;
  answer_.reset();
  while (!answer_) {
    if (auto ok = pump(); !ok) {
      registering_ = false;
      return fail(std::move(ok.error()));
    }
  }
  registering_ = false;
  auto out = std::move(*answer_);
  answer_.reset();
  return out;
}

Result<std::uint32_t> CallPools::create(BrokerLink& link, const Pump& pump, std::size_t slot_bytes,
                                        std::uint32_t slot_count, MemfdOptions options) {
  std::size_t slot_size = 0;
  auto buffer = create_pool_buffer("calls", slot_bytes, slot_count, options, slot_size);
  if (!buffer) return fail(std::move(buffer.error()));
  auto registered = register_pool(link, pump, *buffer, slot_size, slot_count);
  if (!registered) return fail(std::move(registered.error()));
  return own_.add(std::string(), std::move(*buffer), slot_size, slot_count, *registered, options);
}

namespace {
// No channel holds a slot of a pool for calls.
const HeldOnChannels kNotOnChannels = [](const PoolState&, std::uint32_t) { return false; };
}  // namespace

Result<std::optional<Slot>> CallPools::try_take(std::uint32_t pool) {
  if (own_.find(pool) == nullptr) {
    return fail(Errc::invalid_argument, "acquire: no pool " + std::to_string(pool));
  }
  return own_.take(pool, kNotOnChannels);
}

Status CallPools::stage(proto::Frame::Builder frame, const Slot& slot, const Layout& layout,
                        const FrameMeta& meta, std::uint64_t sequence) {
  if (auto ok = check_frame_meta(meta, service_frame_options(), layout); !ok)
    return fail(std::move(ok.error()));
  auto pool = own_.publish(std::string_view(), slot, layout, sequence);
  if (!pool) return fail(std::move(pool.error()));
  (*pool)->broker_busy[slot.index] = true;  // until SlotFree
  fill_frame(frame, sequence, 0, layout, meta);
  frame.setPool((*pool)->broker_id);
  frame.setSlot(slot.index);
  return {};
}

std::size_t CallPools::free_slots(std::uint32_t pool) {
  return own_.free_slots(pool, kNotOnChannels);
}

std::size_t CallPools::slot_size(std::uint32_t pool) {
  const PoolState* p = own_.find(pool);
  return p == nullptr ? 0 : p->slot_size;
}

Status CallPools::renew(BrokerLink& link, const Pump& pump) {
  attached_.clear();
  return own_.renew([&](const PoolState& pool, const PoolBuffer& buffer) {
    return register_pool(link, pump, buffer, pool.slot_size,
                         static_cast<std::uint32_t>(pool.slots.size()));
  });
}

Status describe_call_frame(Frame& out, const std::string& service, proto::Frame::Reader frame) {
  FrameBuilder::topic(out) = service;
  auto layout = layout_from_proto(frame.getLayout());
  if (!layout) return fail(std::move(layout.error()));
  FrameBuilder::set(out, frame.getSequence(), frame.getTimestampNs(), std::move(*layout));
  if (frame.hasMeta()) {
    const FrameMeta meta = meta_from_proto(frame.getMeta());
    if (auto ok = check_frame_meta(meta, service_frame_options(), FrameBuilder::layout(out)); !ok)
      return fail(Errc::protocol_violation,
                  "the broker passed a frame of '" + service + "' with " + ok.error().message());
    FrameBuilder::meta(out, meta);
  }
  return {};
}

Result<Frame> CallPools::frame(const std::string& service, proto::Frame::Reader frame,
                               const std::shared_ptr<SharedConnection>& connection) {
  Frame out = FrameBuilder::make();
  // From here on the broker counts the frame as this client's: it is released on every path.
  FrameBuilder::from_socket(out, connection);
  FrameBuilder::of_call(out);
  if (auto ok = describe_call_frame(out, service, frame); !ok) return fail(std::move(ok.error()));
  auto it = attached_.find(frame.getPool());
  if (it == attached_.end() || frame.getSlot() >= it->second->slot_count) {
    return fail(Errc::protocol_violation, "the broker passed a frame of '" + service +
                                              "' in slot " + std::to_string(frame.getSlot()) +
                                              " of pool " + std::to_string(frame.getPool()) +
                                              ", which it never attached");
  }
  if (auto fits = validate_layout(FrameBuilder::layout(out), it->second->slot_size); !fits) {
    return fail(Errc::protocol_violation,
                "the broker passed a frame of '" + service +
                    "' whose layout does not fit its slot: " + fits.error().message());
  }
  FrameBuilder::in_pool(out, it->second, frame.getSlot());
  return out;
}

}  // namespace shmfd::detail
