#include "introspection.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "client_state.hpp"
#include "shmfd/wire/channel.hpp"

namespace shmfd::broker {
namespace {

std::uint64_t nanoseconds(std::chrono::steady_clock::duration d) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

void describe(proto::ClientInfo::Builder info, const ClientState& client,
              std::chrono::steady_clock::time_point now) {
  info.setId(client.id);
  info.setPid(client.credentials.pid);
  info.setUid(client.credentials.uid);
  info.setGid(client.credentials.gid);
  info.setName(client.name);
  info.setCommand(client.command);
  info.setConnectedNs(nanoseconds(now - client.connected_at));
  info.setProduces(static_cast<std::uint32_t>(client.produced.size()));
  info.setSubscribes(static_cast<std::uint32_t>(
      std::count_if(client.subscriptions.begin(), client.subscriptions.end(),
                    [](const auto& entry) { return entry.second->topic != nullptr; })));
  std::uint64_t pinned = 0;
  for (const auto& [name, sub] : client.subscriptions) {
    for (const Pending& p : sub->pending) pinned += p.frame ? p.frame->bytes : 0;
    for (const InFlight& f : sub->in_flight) pinned += f.pool_frame ? f.pool_frame->bytes : 0;
  }
  for (const auto& [number, f] : client.call_frames) pinned += f.pool_frame->bytes;
  info.setBytesPinned(pinned);
}

// The pools `client` registered or holds frames of (their producer may be gone), and how many
// slots of each it holds or has queued.
void collect_pools(const ClientState& client, std::map<std::uint32_t, const PoolRecord*>& pools,
                   std::map<std::uint32_t, std::uint32_t>& slots) {
  for (const auto& [id, pool] : client.pools) pools[id] = pool.get();
  for (const auto& [name, sub] : client.subscriptions) {
    for (const Pending& p : sub->pending) {
      if (p.frame && p.frame->pool) {
        pools[p.frame->pool->id] = p.frame->pool.get();
        ++slots[p.frame->pool->id];
      }
    }
    for (const InFlight& f : sub->in_flight) {
      if (f.pool_frame) {
        pools[f.pool_frame->pool->id] = f.pool_frame->pool.get();
        ++slots[f.pool_frame->pool->id];
      }
    }
  }
  // Frames of calls in slots of another client's pool for calls (services).
  for (const auto& [number, f] : client.call_frames) {
    pools[f.pool_frame->pool->id] = f.pool_frame->pool.get();
    ++slots[f.pool_frame->pool->id];
  }
}

void fill_topic(proto::TopicInfo::Builder t, const Topic& topic) {
  t.setName(topic.name);
  t.setKind(to_proto(topic.kind));
  t.setGuarantee(to_proto(topic.guarantee));
  t.setProducer(topic.producer != nullptr ? topic.producer->id : 0);
  t.setFrames(topic.frames);
  t.setBytes(topic.bytes);
  auto subs = t.initSubscribers(static_cast<unsigned>(topic.subscribers.size()));
  unsigned j = 0;
  std::uint64_t channel_frames = 0;
  for (const Subscription* sub : topic.subscribers) {
    auto s = subs[j++];
    s.setClient(sub->client->id);
    s.setQueueDepth(sub->depth);
    s.setBackpressure(to_proto(sub->policy));
    std::uint32_t queued = static_cast<std::uint32_t>(sub->queued_frames());
    std::uint32_t in_flight = static_cast<std::uint32_t>(sub->in_flight.size());
    std::uint64_t delivered = sub->delivered;
    if (const ChannelRecord* c = sub->channel.get();
        c != nullptr && c->started && c->producer_page && c->consumer_page) {
      // Read from the pages: each side writes its own counters, so a hostile one may show
      // anything for itself; clamped to what the ring can hold.
      const ChannelProgress p = channel_progress(*c->producer_page, *c->consumer_page);
      queued += std::min(p.published - p.read, c->capacity);
      in_flight += std::min(p.read - p.released, c->capacity);
      delivered += p.read;
      channel_frames = std::max<std::uint64_t>(channel_frames, p.published);
      s.setChannel(c->id);
    }
    s.setQueued(queued);
    s.setInFlight(in_flight);
    s.setDelivered(delivered);
    s.setDropped(sub->dropped);
  }
  t.setChannelFrames(channel_frames);
}

// Each service, with the percentiles of its answered calls' latency (nearest rank).
void fill_services(proto::BrokerState::Builder state, const Services& services) {
  const auto views = services.view();
  auto list = state.initServices(static_cast<unsigned>(views.size()));
  unsigned i = 0;
  for (const Services::ServiceView& v : views) {
    auto s = list[i++];
    s.setName(v.name);
    s.setWaiting(static_cast<std::uint32_t>(v.waiting));
    s.setCalls(v.calls);
    s.setFailed(v.failed);
    auto servers = s.initServers(static_cast<unsigned>(v.servers.size()));
    unsigned j = 0;
    for (const Services::ServerView& server : v.servers) {
      auto out = servers[j++];
      out.setClient(server.client);
      out.setMaxInFlight(server.max_in_flight);
      out.setInFlight(server.in_flight);
      out.setCalls(server.calls);
    }
    std::vector<std::uint64_t> sorted = v.latency_us;
    if (sorted.empty()) continue;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = [&](unsigned percent) {
      const std::size_t n = sorted.size();
      return sorted[std::min(n - 1, (n * percent + 99) / 100 - 1)];
    };
    s.setAnswered(static_cast<std::uint32_t>(sorted.size()));
    s.setLatencyP50Us(rank(50));
    s.setLatencyP90Us(rank(90));
    s.setLatencyP99Us(rank(99));
    s.setLatencyMaxUs(sorted.back());
  }
}

}  // namespace

void fill_state(proto::BrokerState::Builder state, const Registry& registry,
                const Services& services, const std::map<std::uint64_t, ClientState*>& clients) {
  const auto now = std::chrono::steady_clock::now();
  state.setBrokerPid(static_cast<std::uint32_t>(::getpid()));
  state.setUptimeNs(nanoseconds(now - registry.started_at()));

  auto topics = state.initTopics(static_cast<unsigned>(registry.topics().size()));
  unsigned i = 0;
  for (const auto& [name, topic] : registry.topics()) fill_topic(topics[i++], *topic);

  auto list = state.initClients(static_cast<unsigned>(clients.size()));
  i = 0;
  std::map<std::uint32_t, std::map<std::uint64_t, std::uint32_t>> holders;
  std::map<std::uint32_t, const PoolRecord*> pools;
  for (const auto& [id, client] : clients) {
    describe(list[i++], *client, now);
    std::map<std::uint32_t, std::uint32_t> slots;
    collect_pools(*client, pools, slots);
    for (auto [pool, n] : slots) holders[pool][id] = n;
  }
  auto out = state.initPools(static_cast<unsigned>(pools.size()));
  i = 0;
  for (const auto& [id, pool] : pools) {
    auto p = out[i++];
    p.setId(id);
    p.setTopic(pool->topic);
    p.setOwner(pool->owner != nullptr ? pool->owner->id : 0);
    p.setSlotCount(pool->slot_count);
    p.setSlotSize(pool->slot_size);
    p.setSlotsBusy(
        static_cast<std::uint32_t>(std::count(pool->busy.begin(), pool->busy.end(), true)));
    const auto& h = holders[id];
    auto holder_list = p.initHolders(static_cast<unsigned>(h.size()));
    unsigned k = 0;
    for (auto [client, n] : h) {
      holder_list[k].setClient(client);
      holder_list[k].setSlots(n);
      ++k;
    }
  }
  fill_services(state, services);
}

}  // namespace shmfd::broker
