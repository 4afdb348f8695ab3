// Routing: requests in, replies and deliveries out. A handler checks a request against the
// registry, the access policy and the quotas, changes the registry, and posts what results to
// the outboxes of the clients concerned: it never sees a session or a socket, and it returns
// a refusal as a value instead of replying itself. Everything it posts leaves at the end of
// the event (Wakeups), so the router can be driven and checked without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "client_state.hpp"
#include "closer.hpp"
#include "log.hpp"
#include "options.hpp"
#include "outbox.hpp"
#include "refusal.hpp"
#include "registry.hpp"
#include "services.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd::broker {

class Router {
 public:
  // `options` is read at each request: a reloaded policy applies from the next one.
  Router(Registry& registry, const Options& options, const Logger& log, CloserPtr closer,
         Wakeups& wakeups);

  // A client is routed from join() until leave(), which stops everything it produces (its
  // subscribers get EndOfStream), drops what is queued for it and frees what it held. It is
  // listed (introspection) until remove(), when its connection has closed.
  void join(ClientState& client);
  void leave(ClientState& client);
  void remove(ClientState& client);

  Outcome advertise(ClientState& client, proto::Advertise::Reader advertise);
  Outcome unadvertise(ClientState& client, proto::Unadvertise::Reader unadvertise);
  Outcome subscribe(ClientState& client, proto::Subscribe::Reader subscribe);
  Outcome unsubscribe(ClientState& client, proto::Unsubscribe::Reader unsubscribe);
  Outcome register_pool(ClientState& client, proto::RegisterPool::Reader reg,
                        std::vector<UniqueFd>& fds);
  // A frame of `client`'s topic: verified, then queued for every subscriber.
  Outcome publish(ClientState& client, proto::Publish::Reader publish, std::vector<UniqueFd>& fds);
  Outcome release(ClientState& client, proto::Release::Reader release);
  // Version 4: the consumer read `count` Delivers of a subscription with a prefetch.
  Outcome read(ClientState& client, proto::Read::Reader read);
  // Channels (channels.cpp): a page for a channel this client was asked for; the producer's
  // word that pool frames now go on the channel; a layout the channels' descriptors name.
  Outcome channel_page(ClientState& client, proto::ChannelPage::Reader page,
                       std::vector<UniqueFd>& fds);
  Outcome channel_started(ClientState& client, proto::ChannelStarted::Reader started);
  Outcome define_layout(ClientState& client, proto::DefineLayout::Reader define);
  Outcome introspect(ClientState& client);

  // Ends an event, after its deliveries went out: frames of a pool that ran dry still queued
  // for drop-oldest subscribers are dropped, so the producer gets its slots back.
  void settle();

  // Whether a block-producer subscriber of a topic `producer` produces cannot take another
  // frame: then the producer's messages are left unread.
  bool must_hold(const ClientState& producer) const;
  // Every topic's frames on channels only, counted (registry.hpp): for introspection, and at
  // each hold check so that the counters keep up when no one asks.
  void count_channel_frames();
  const std::map<std::uint64_t, ClientState*>& clients() const { return clients_; }
  // Version 6: services (services.hpp).
  Services& services() { return services_; }
  const Services& services() const { return services_; }
  const Registry& registry() const { return registry_; }

 private:
  // Gives up `topic`: its subscribers get EndOfStream with `why`, its pools are unregistered
  // (frames of them still held keep their slots) and the topic is free for another producer.
  void stop_producing(ClientState& producer, Topic* topic, const std::string& why);
  Outcome publish_fd(ClientState& client, Topic& topic, proto::Frame::Reader frame,
                     const Layout& layout, const FrameMeta& meta, std::vector<UniqueFd>& fds);
  Outcome publish_slot(ClientState& client, Topic& topic, proto::Frame::Reader frame,
                       const Layout& layout, const FrameMeta& meta);
  // Queues `frame` for every subscriber of `topic` (a pool frame: those not on a channel).
  void fan_out(const ClientState& producer, Topic& topic, FramePtr frame);
  // Asks `sub`'s client and its topic's producer for the pages of a channel between them, if
  // both speak channels and the topic takes pool frames.
  void offer_channel(Subscription& sub);
  // Ends `sub`'s channel. The producer is told, to reclaim every slot the consumer held
  // (`reclaim`: the consumer has gone) or to wait for its releases (it unsubscribed: a later
  // leave reclaims them).
  void close_channel(Subscription& sub, const std::string& why, bool reclaim, bool tell_consumer);
  // Whether channel `id` was handed out and has closed since (a page or ChannelStarted for it
  // crossed its ChannelClose: no error).
  bool closed_before(std::uint32_t id) const;
  // Tells `topic`'s producer whether pool frames must still come as Publish (Route).
  void update_route(Topic& topic);

  Registry& registry_;
  const Options& options_;
  const Logger& log_;
  CloserPtr closer_;
  Wakeups& wakeups_;
  std::map<std::uint64_t, ClientState*> clients_;
  std::vector<PoolPtr> dry_pools_;  // ran dry during this event: settle() looks at them
  std::map<std::uint32_t, ChannelPtr> channels_;
  std::uint32_t next_channel_ = 1;
  // Channels closed by an Unsubscribe, whose consumer may still hold slots: when it leaves,
  // the producer is told to reclaim them.
  struct Lingering {
    std::uint32_t channel;
    std::uint64_t consumer;
    std::uint64_t producer;
    std::string topic;
  };
  std::vector<Lingering> lingering_;
  Services services_;
};

}  // namespace shmfd::broker
