#include "quota.hpp"

#include <algorithm>

#include "client_state.hpp"
#include "shmfd/wire/channel.hpp"

namespace shmfd::broker {

RateBudget::RateBudget(std::uint64_t per_second)
    : rate_(per_second),
      budget_(static_cast<double>(per_second)),
      refilled_(std::chrono::steady_clock::now()) {}

std::chrono::nanoseconds RateBudget::wait(std::chrono::steady_clock::time_point now) {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  const double per_second = static_cast<double>(rate_);
  const std::chrono::duration<double> elapsed = now - refilled_;
  refilled_ = now;
  budget_ = std::min(per_second, budget_ + elapsed.count() * per_second);
  if (budget_ >= 1.0) return std::chrono::nanoseconds(0);
  const double seconds = (1.0 - budget_) / per_second;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9) + 1);
}

void RateBudget::spend() {
  if (rate_ != 0) budget_ -= 1.0;
}

Outcome check_pinned(const Account& account, std::uint64_t bytes, std::uint64_t limit,
                     const std::string& topic, std::uint64_t sequence) {
  const std::uint64_t pinned = account.pinned_bytes;
  if (bytes <= limit && pinned <= limit - bytes) return {};
  return refuse(proto::ErrorCode::LIMIT_EXCEEDED,
                "the broker already holds " + std::to_string(pinned) +
                    " bytes of this client's buffers; " + std::to_string(bytes) +
                    " more would pass the broker's --max-pinned-bytes " + std::to_string(limit),
                topic, sequence);
}

namespace {

// Why a frame held past the deadline costs its holder the connection under `limits.stuck`,
// or empty when it does not.
std::string disconnect_reason(Backpressure policy, const InFlight& held, const Limits& limits,
                              const std::string& what, std::chrono::steady_clock::time_point now) {
  if (limits.stuck == StuckPolicy::always) return what + "; disconnecting";
  if (limits.stuck != StuckPolicy::pool_dry || !held.pool_frame ||
      policy != Backpressure::drop_oldest) {
    return {};
  }
  const auto& dry = held.pool_frame->pool->dry_since;
  const auto deadline = std::chrono::milliseconds(limits.hold_deadline_ms);
  if (!dry || now - *dry < deadline / 4) return {};
  return what + ", and the pool has had no free slot for " +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - *dry).count()) +
         " ms; disconnecting";
}

// The hold deadline on a channel, read from its pages: frames given to the consumer and not
// released, with its release count standing still for the deadline. (The count is the
// consumer's to write: lying about it only hides how long it holds, and the producer still
// keeps its slots from it alone.) Under --disconnect-stuck the consumer is cut off; with the
// default policy, only when its producer also says the pool has had no free slot for a quarter
// of the deadline (one consumer cannot dry a pool: it holds at most its window; several can).
std::optional<std::string> judge_channel(ClientState& client, Subscription& sub,
                                         const Limits& limits, const Logger& log,
                                         std::chrono::steady_clock::time_point now) {
  if (!sub.on_channel() || !sub.channel->producer_page || !sub.channel->consumer_page) {
    return std::nullopt;
  }
  ChannelRecord& c = *sub.channel;
  const ChannelProgress p = channel_progress(*c.producer_page, *c.consumer_page);
  if (p.dry_spell == 0) {
    c.dry_since.reset();
  } else if (!c.dry_since || p.dry_spell != c.dry_spell) {
    c.dry_spell = p.dry_spell;  // a new spell: two checks apart may see two different ones
    c.dry_since = now;
  }
  const std::uint32_t outstanding = p.published - p.released;
  if (outstanding == 0 || p.released != c.released_seen ||
      c.progress_at.time_since_epoch().count() == 0) {
    c.released_seen = p.released;
    c.progress_at = now;
    c.reported = false;
    return std::nullopt;
  }
  const auto deadline = std::chrono::milliseconds(limits.hold_deadline_ms);
  if (now - c.progress_at < deadline) return std::nullopt;
  const std::string what = client.describe() + " has held " + std::to_string(outstanding) +
                           " frames of '" + c.topic + "' on channel " + std::to_string(c.id) +
                           " without releasing any for more than " +
                           std::to_string(limits.hold_deadline_ms) + " ms";
  if (!c.reported) {
    c.reported = true;
    log.warn(what);
  }
  if (limits.stuck == StuckPolicy::always) return what + "; disconnecting";
  // pool-dry: as through the broker, a drop-oldest consumer holding slots of a pool that has
  // had none free for a quarter of the deadline. That it holds one of them is the producer's
  // word (its page): a producer can get its own consumers that hold its frames past the
  // deadline cut off, as --disconnect-stuck would, and no consumer that releases.
  if (limits.stuck != StuckPolicy::pool_dry || sub.policy != Backpressure::drop_oldest ||
      !c.dry_since || now - *c.dry_since < deadline / 4) {
    return std::nullopt;
  }
  return what + ", and its producer has found no free slot in the pool for " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(now - *c.dry_since).count()) +
         " ms; disconnecting";
}

}  // namespace

std::optional<Refusal> judge_holds(ClientState& client, const Limits& limits, const Logger& log,
                                   std::chrono::steady_clock::time_point now) {
  const auto deadline = std::chrono::milliseconds(limits.hold_deadline_ms);
  for (auto& [name, sub] : client.subscriptions) {
    for (InFlight& f : sub->in_flight) {
      if (now - f.since < deadline) continue;
      // A held pool slot is memory its producer cannot reuse; a frame held by a block-producer
      // subscriber holds its producer back. A fresh frame held otherwise costs no one else.
      if (!f.pool_frame && sub->policy != Backpressure::block_producer) continue;
      const std::string where = f.pool_frame
                                    ? "slot " + std::to_string(f.pool_frame->slot) + " of pool " +
                                          std::to_string(f.pool_frame->pool->id)
                                    : std::string("a block-producer subscription");
      const std::string what = client.describe() + " has held frame " + std::to_string(f.sequence) +
                               " of '" + name + "' (" + where + ") for more than " +
                               std::to_string(limits.hold_deadline_ms) + " ms";
      if (!f.reported) {
        f.reported = true;
        log.warn(what);
      }
      // Judged again at every check: a pool can run dry long after the hold was reported.
      std::string why = disconnect_reason(sub->policy, f, limits, what, now);
      if (!why.empty()) {
        return Refusal{
            proto::ErrorCode::LIMIT_EXCEEDED, std::move(why), name, f.sequence, true, true};
      }
    }
  }
  // Frames of calls' pool slots (section 16): as pool frames of a drop-oldest subscription.
  for (auto& [number, f] : client.call_frames) {
    if (now - f.since < deadline) continue;
    const PoolRecord& pool = *f.pool_frame->pool;
    const std::string what = client.describe() + " has held call frame " + std::to_string(number) +
                             " (slot " + std::to_string(f.pool_frame->slot) + " of pool " +
                             std::to_string(pool.id) + ") for more than " +
                             std::to_string(limits.hold_deadline_ms) + " ms";
    if (!f.reported) {
      f.reported = true;
      log.warn(what);
    }
    // A caller or server that holds a slot past the deadline while the pool is dry is cut off.
    std::string why = disconnect_reason(Backpressure::drop_oldest, f, limits, what, now);
    if (!why.empty()) {
      return Refusal{proto::ErrorCode::LIMIT_EXCEEDED, std::move(why), {}, number, true, true};
    }
  }
  for (auto& [name, sub] : client.subscriptions) {
    if (auto why = judge_channel(client, *sub, limits, log, now)) {
      return Refusal{proto::ErrorCode::LIMIT_EXCEEDED, std::move(*why), name, 0, true, true};
    }
  }
  return std::nullopt;
}

}  // namespace shmfd::broker
