# The shmfd broker protocol. Every message is one SOCK_SEQPACKET datagram holding one
# `Message` (a flat Cap'n Proto message, unpacked) plus the fds it refers to. A message refers
# to its fds by index into the datagram's fd list, as Cap'n Proto's own RPC does, so the bytes
# never carry fd numbers that mean nothing in the receiving process.
@0xd949abb953f3e485;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shmfd::proto");

using import "layout.capnp".Layout;

# The newest protocol version this schema describes, and the oldest a broker built from it
# accepts. A client sends the newest version it speaks in Hello; the broker answers Welcome with
# the version the connection uses, or Error(protocolVersion) naming the range it accepts.
# Version 2 added Unsubscribe, Unadvertise and the specific error codes from notReadable on.
# Version 3 added channels; version 4 Subscribe.prefetch, Read and EndOfStream.dropped;
# version 5 frame metadata (Frame.meta, Advertise.options, TopicAdvertised; section 15);
# version 6 services (Offer ... Cancel, ErrorCode.invalidCall; section 16).
const protocolVersion :UInt32 = 6;
const minProtocolVersion :UInt32 = 2;

struct Message {
  union {
    hello @0 :Hello;
    welcome @1 :Welcome;
    advertise @2 :Advertise;
    subscribe @3 :Subscribe;
    publish @4 :Publish;
    deliver @5 :Deliver;
    release @6 :Release;
    endOfStream @7 :EndOfStream;
    error @8 :Error;
    advertised @9 :Advertised;
    subscribed @10 :Subscribed;
    registerPool @11 :RegisterPool;
    poolRegistered @12 :PoolRegistered;
    poolAttach @13 :PoolAttach;
    slotFree @14 :SlotFree;
    introspect @15 :Introspect;
    brokerState @16 :BrokerState;
    unsubscribe @17 :Unsubscribe;
    unsubscribed @18 :Unsubscribed;
    unadvertise @19 :Unadvertise;
    unadvertised @20 :Unadvertised;
    credit @21 :Credit;
    # Version 3: channels (docs/PROTOCOL.md, section 14).
    channelRequest @22 :ChannelRequest;
    channelPage @23 :ChannelPage;
    channelOpen @24 :ChannelOpen;
    channelStarted @25 :ChannelStarted;
    channelClose @26 :ChannelClose;
    defineLayout @27 :DefineLayout;
    route @28 :Route;
    # Version 4: a consumer's reading, for subscriptions with a prefetch (section 6).
    read @29 :Read;
    # Version 5: what a subscribed topic's producer declared (section 15).
    topicAdvertised @30 :TopicAdvertised;
    # Version 6: services (section 16).
    offer @31 :Offer;
    offered @32 :Offered;
    withdraw @33 :Withdraw;
    withdrawn @34 :Withdrawn;
    call @35 :Call;
    request @36 :Request;
    respond @37 :Respond;
    response @38 :Response;
    cancelCall @39 :CancelCall;
    cancel @40 :Cancel;
    poolDetach @41 :PoolDetach;
  }
}

# Client -> broker, first message on a connection.
struct Hello {
  version @0 :UInt32;   # protocolVersion of the client
  clientName @1 :Text;  # for logs and introspection
  # Version 3: the client takes pool frames on channels when the broker offers them.
  channels @2 :Bool;
}

# Broker -> client, answer to a Hello with a matching version.
struct Welcome {
  version @0 :UInt32;
  maxMessageBytes @1 :UInt32;
  maxFdsPerMessage @2 :UInt32;
  # A producer may have at most this many Publishes that carry an fd sent and not yet covered
  # by Credit; it waits for Credit before sending more. Pool frames (no fd) do not count: their
  # slots bound them.
  publishWindow @3 :UInt32;
  # Version 3, a client that asked for channels: the Welcome carries one fd, the client's
  # doorbell (section 14), which the broker rings after each message it sends the client.
  doorbell @4 :Bool;
}

# Broker -> producer: the broker has read `frames` more of this client's fd-carrying Publishes
# (accepted or refused); that many more may be sent. Sent once half a window has been read.
struct Credit {
  frames @0 :UInt32;
}

# What a receiver can rely on; see libshmfd/include/shmfd/guarantee.hpp for the seals.
enum Guarantee {
  sealed @0;  # immutable: SHRINK|GROW|WRITE|SEAL
  pool @1;    # only the producer writes: SHRINK|GROW|FUTURE_WRITE|SEAL
}

enum LayoutKind {
  blob @0;
  image @1;
  audio @2;
  tensor @3;
}

# Producer -> broker: "I publish on this topic."
struct Advertise {
  topic @0 :Text;
  kind @1 :LayoutKind;
  guarantee @2 :Guarantee;
  # Version 5: what the topic's frames carry beside their bytes. Absent: the defaults (no user
  # header, no rate, timestamps not required).
  options @3 :TopicOptions;
}

# Version 5 (section 15).
struct TopicOptions {
  maxHeaderBytes @0 :UInt32;     # the largest user header a frame may carry, at most 4096
  headerSchema @1 :Text;         # what the header holds, for people and tools; printable ASCII
  frameRateNum @2 :UInt32;       # the nominal frame rate, num/den per second; 0/0: unknown
  frameRateDen @3 :UInt32;
  timestampsRequired @4 :Bool;   # every frame carries a pts or a dts
}

# Broker -> consumer of version 5: the topic it subscribes to has a producer, which declared
# these. Sent after Subscribed when the topic has a producer then, and whenever one advertises
# it later; before any Deliver or channel of that producer.
struct TopicAdvertised {
  topic @0 :Text;
  kind @1 :LayoutKind;
  guarantee @2 :Guarantee;
  options @3 :TopicOptions;
  producer @4 :UInt64;           # the producer's client id, as in EndOfStream
}

enum Backpressure {
  dropOldest @0;     # live media: a full queue drops its oldest frame
  blockProducer @1;  # no loss: the producer is told to wait
}

# Broker -> producer: the Advertise was accepted.
struct Advertised {
  topic @0 :Text;
}

# Consumer -> broker. queueDepth bounds both the frames the consumer holds (delivered, not
# yet released) and the frames waiting for it in the broker; 0 asks for the broker's default.
struct Subscribe {
  topic @0 :Text;
  queueDepth @1 :UInt32;
  backpressure @2 :Backpressure;
  # Version 4: at most this many Delivers of the subscription that the consumer has not read
  # (Read) nor released; the rest wait in the broker, where the backpressure policy applies.
  # 0: no such bound (as before version 4).
  prefetch @3 :UInt32;
}

# Consumer -> broker (version 4): `count` Delivers of `topic` read since the Subscribe.
struct Read {
  topic @0 :Text;
  count @1 :UInt64;
}

# Broker -> consumer: the Subscribe was accepted, with the depth granted (capped by the broker).
struct Subscribed {
  topic @0 :Text;
  queueDepth @1 :UInt32;
}

# A frame is either a buffer of its own (an fd travels with the message) or a slot of a pool
# registered earlier (pool != 0; no fd). A pool frame's layout offsets are relative to the
# start of its slot, and the layout must fit inside the slot.
struct Frame {
  fd @0 :UInt32;           # fd frames: index into the datagram's fd list
  layout @1 :Layout;
  sequence @2 :UInt64;
  timestampNs @3 :UInt64;  # CLOCK_MONOTONIC at capture
  pool @4 :UInt32;         # pool frames: the broker-assigned pool id
  slot @5 :UInt32;         # pool frames: the slot index
  meta @6 :FrameMeta;      # version 5: absent when the frame carries none
}

# Version 5: what a frame carries beside its bytes (section 15). A time of all ones is "none".
struct FrameMeta {
  pts @0 :UInt64 = 0xffffffffffffffff;       # presentation time, ns of the stream's time
  dts @1 :UInt64 = 0xffffffffffffffff;       # decoding time, ns of the stream's time
  duration @2 :UInt64 = 0xffffffffffffffff;  # ns
  flags @3 :UInt32;    # discontinuity 1, corrupted 2, deltaUnit 4, gap 8, marker 16; others refused
  crop @4 :Crop;       # image frames only; absent: the whole image
  header @5 :Data;     # the user header, at most the topic's maxHeaderBytes
}

struct Crop {
  x @0 :UInt32;
  y @1 :UInt32;
  width @2 :UInt32;
  height @3 :UInt32;
}

# Producer -> broker, with the pool's memfd: N slots of slotSize bytes each (a multiple of the
# page size, so every slot starts on a page boundary). Sealed at the pool level. Version 6: an
# empty topic registers a pool for the client's frames of calls (requests and responses).
struct RegisterPool {
  topic @0 :Text;
  slotCount @1 :UInt32;
  slotSize @2 :UInt64;
  fd @3 :UInt32;  # index into the datagram's fd list
}

# Broker -> producer: the pool is verified; frames name it by this id.
struct PoolRegistered {
  topic @0 :Text;
  pool @1 :UInt32;
}

# Broker -> consumer, with the pool's fd, once, before the first frame of that pool.
struct PoolAttach {
  topic @0 :Text;
  pool @1 :UInt32;
  slotCount @2 :UInt32;
  slotSize @3 :UInt64;
  fd @4 :UInt32;
  producer @5 :UInt64;  # version 3: the client id of the producer that registered it
}

# Broker -> producer: every subscriber has let go of this slot; it may be written again.
struct SlotFree {
  pool @0 :UInt32;
  slot @1 :UInt32;
}

# Producer -> broker.
struct Publish {
  topic @0 :Text;
  frame @1 :Frame;
}

# Broker -> consumer.
struct Deliver {
  topic @0 :Text;
  frame @1 :Frame;
  dropped @2 :UInt64;  # frames dropped for this subscriber so far
  # The level the broker verified this frame's fd at: its topic's guarantee when it was
  # published. A consumer that checks the fd again checks it at this level. The default is
  # what a broker that does not send it verified: at least pool.
  guarantee @3 :Guarantee = pool;
}

# Consumer -> broker: done with a frame. Version 6: an empty topic releases the frame of a pool
# slot that came in a Request or Response, by the number the broker gave it (its sequence).
struct Release {
  topic @0 :Text;
  sequence @1 :UInt64;
}

# Consumer -> broker: stop delivering this topic. Frames queued in the broker are dropped;
# frames the consumer already holds stay held (and keep their pool slots) until it releases
# them, which it may still do after Unsubscribed.
struct Unsubscribe {
  topic @0 :Text;
}

# Broker -> consumer: no Deliver for this topic follows.
struct Unsubscribed {
  topic @0 :Text;
}

# Producer -> broker: stop producing this topic without disconnecting. Subscribers get
# EndOfStream; the producer's pools of the topic are unregistered (frames consumers hold keep
# their slots until released, but no SlotFree is sent for them any more).
struct Unadvertise {
  topic @0 :Text;
}

# Broker -> producer: the topic is no longer this client's; its pools may be unmapped.
struct Unadvertised {
  topic @0 :Text;
}

# Broker -> consumer: the topic's producer left.
struct EndOfStream {
  topic @0 :Text;
  reason @1 :Text;
  producer @2 :UInt64;  # version 3: the producer's client id (what of it the consumer may forget)
  dropped @3 :UInt64;   # version 4: frames dropped for the subscription in all (as Deliver.dropped)
}

enum ErrorCode {
  protocolVersion @0;
  malformedMessage @1;
  notMemfd @2;
  missingSeals @3;
  bufferTooSmall @4;
  invalidLayout @5;
  limitExceeded @6;
  unknownTopic @7;       # Publish, RegisterPool or Unadvertise on a topic this client does not produce
  permissionDenied @8;
  internal @9;
  topicTaken @10;  # another client already produces this topic
  notReadable @11;        # the fd's access mode does not allow a read-only mapping
  invalidTopicName @12;   # see docs/PROTOCOL.md, "Topic names"
  unexpectedMessage @13;  # a message this connection may not send now (or ever)
  alreadySubscribed @14;
  notSubscribed @15;      # Release or Unsubscribe of a topic this client is not subscribed to
  notHeld @16;            # Release of a frame this client does not hold
  slotBusy @17;           # Publish into a pool slot not yet freed by SlotFree
  unknownPool @18;        # a pool id that is not this client's pool for the topic
  guaranteeMismatch @19;  # RegisterPool on a topic advertised with the sealed guarantee
  wrongFdCount @20;       # a message carried more or fewer fds than it takes
  alreadyAdvertised @21;  # Advertise again with another kind or guarantee
  badSequence @22;        # sequence 0, or not greater than the producer's last on the topic
  invalidMetadata @23;    # version 5: frame metadata or topic options that break a rule
  invalidCall @24;        # version 6: a call id in use, a Respond or CancelCall for no such call
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;     # for people: names what was wrong
  topic @2 :Text;       # the topic of the refused request, if any
  sequence @3 :UInt64;  # the refused frame's sequence, for a refused Publish
}

# shmfdctl -> broker: what is in flight? Allowed for the broker's own uid and root.
struct Introspect {}

# Broker -> shmfdctl.
struct BrokerState {
  brokerPid @0 :UInt32;
  uptimeNs @1 :UInt64;
  topics @2 :List(TopicInfo);
  clients @3 :List(ClientInfo);
  pools @4 :List(PoolInfo);
  services @5 :List(ServiceInfo);  # version 6
}

# Version 6: a service, its servers, and its calls' latency from the broker's receipt of a Call
# to the last response (of its last 512 answered calls; 0 when none was answered yet).
struct ServiceInfo {
  name @0 :Text;
  servers @1 :List(ServerInfo);
  waiting @2 :UInt32;        # calls waiting for a server with room (whenBusy = wait)
  calls @3 :UInt64;          # received
  failed @4 :UInt64;         # ended by a failure of any kind
  answered @5 :UInt32;       # calls the percentiles are of
  latencyP50Us @6 :UInt64;
  latencyP90Us @7 :UInt64;
  latencyP99Us @8 :UInt64;
  latencyMaxUs @9 :UInt64;
}

struct ServerInfo {
  client @0 :UInt64;
  maxInFlight @1 :UInt32;
  inFlight @2 :UInt32;
  calls @3 :UInt64;          # routed to it
}

struct TopicInfo {
  name @0 :Text;
  kind @1 :LayoutKind;
  guarantee @2 :Guarantee;
  producer @3 :UInt64;     # client id, 0 when none
  frames @4 :UInt64;       # published so far
  bytes @5 :UInt64;        # sum of the published layouts' extents (frames through the broker)
  # Pool frames on channels, which the broker does not see pass: the count of the channel that
  # has had most (from its pages; a frame that went both ways is in both counts).
  channelFrames @7 :UInt64;
  subscribers @6 :List(SubscriberInfo);
}

struct SubscriberInfo {
  client @0 :UInt64;
  queueDepth @1 :UInt32;
  backpressure @2 :Backpressure;
  queued @3 :UInt32;       # frames waiting in the broker
  inFlight @4 :UInt32;     # delivered, not yet released
  delivered @5 :UInt64;
  dropped @6 :UInt64;
  channel @7 :UInt32;      # the channel its pool frames take (section 14); 0: the broker
}

struct ClientInfo {
  id @0 :UInt64;
  pid @1 :Int32;
  uid @2 :UInt32;
  gid @3 :UInt32;
  name @4 :Text;           # from Hello
  command @5 :Text;        # /proc/PID/comm at connect
  connectedNs @6 :UInt64;  # how long ago it connected
  produces @7 :UInt32;     # topics it produces
  subscribes @8 :UInt32;   # topics it subscribes to
  bytesPinned @9 :UInt64;  # bytes of the buffers the broker holds queued for it
}

struct PoolInfo {
  id @0 :UInt32;
  topic @1 :Text;
  owner @2 :UInt64;        # producer's client id, 0 once it has gone
  slotCount @3 :UInt32;
  slotSize @4 :UInt64;
  slotsBusy @5 :UInt32;    # published and not yet released by every subscriber
  holders @6 :List(PoolHolder);
}

struct PoolHolder {
  client @0 :UInt64;
  slots @1 :UInt32;        # slots of this pool queued for or held by the client
}

# ---- Channels (version 3; docs/PROTOCOL.md, section 14) ----

enum ChannelSide {
  producer @0;
  consumer @1;
}

# Broker -> both clients of a new channel: make your page for it and send it back.
struct ChannelRequest {
  channel @0 :UInt32;       # the broker's id for the channel
  topic @1 :Text;
  side @2 :ChannelSide;     # which end this client is
  capacity @3 :UInt32;      # ring entries (a power of two)
  queueDepth @4 :UInt32;    # the consumer's granted depth: frames it may hold at once
  backpressure @5 :Backpressure;
  # Version 4, to the producer: the consumer skips to the newest `queueDepth` frames as it
  # reads (docs/PROTOCOL.md section 14, Backpressure), so a dropOldest channel may carry up to
  # twice `queueDepth`.
  consumerSkips @6 :Bool;
  # Version 5, to both sides: the bytes of each metadata entry of the producer's page (docs/
  # PROTOCOL.md section 15), 0 for none. The producer makes its page with entries of this size,
  # and the consumer accepts only such a page.
  metaBytes @7 :UInt32;
}

# Client -> broker, with one fd: the client's page for `channel`, sealed with the pool guarantee.
struct ChannelPage {
  channel @0 :UInt32;
  side @1 :ChannelSide;
  fd @2 :UInt32;
}

# Broker -> client, with one fd: the peer's page, verified, opened read-only. The producer gets
# it as soon as both pages are in; the consumer after every frame the broker queued for it
# before the producer's ChannelStarted, so frames arrive in order.
struct ChannelOpen {
  channel @0 :UInt32;
  topic @1 :Text;
  fd @2 :UInt32;
  dropped @3 :UInt64;       # consumer: frames the broker dropped for it before the channel
  producer @4 :UInt64;      # consumer: the producer's client id (its pools and layouts)
}

# Producer -> broker: every pool frame of the channel's topic from here on goes on the channel.
struct ChannelStarted {
  channel @0 :UInt32;
}

# Broker -> client: the channel is over. `reclaim`: the consumer has gone (or broke the
# channel), and the producer takes back every slot it held; otherwise it unsubscribed and
# releases what it still holds through its page as it lets go.
struct ChannelClose {
  channel @0 :UInt32;
  topic @1 :Text;
  reason @2 :Text;
  reclaim @3 :Bool;
}

# Producer -> broker -> consumers on channels: descriptors of `topic` name `layout` as `id`.
# No answer: the producer names the id on its channels right after sending this, and a consumer
# that meets an id before its definition has arrived reads its socket and waits for it
# (section 14). A refused definition is an Error to the producer.
struct DefineLayout {
  topic @0 :Text;
  id @1 :UInt32;
  layout @2 :Layout;
  producer @3 :UInt64;  # set by the broker as it passes it on: whose ids these are
}

# Broker -> producer: whether pool frames of `topic` must also be sent as Publish (some
# subscriber is not on a channel). Assumed true until the broker says otherwise.
struct Route {
  topic @0 :Text;
  viaBroker @1 :Bool;
}

# ---- Services (version 6; docs/PROTOCOL.md, section 16) ----

# Server -> broker: this client serves `service` (the topic-name rules apply), with at most
# `maxInFlight` calls at once (0: the broker's default; the broker caps it).
struct Offer {
  service @0 :Text;
  maxInFlight @1 :UInt32;
}

struct Offered {
  service @0 :Text;
  maxInFlight @1 :UInt32;  # granted
}

# Server -> broker: stop serving `service`; its calls in flight fail with serverGone.
struct Withdraw {
  service @0 :Text;
}

struct Withdrawn {
  service @0 :Text;
}

# What a caller does when every server of the service is at its bound (or the caller at its).
enum WhenBusy {
  fail @0;  # a Response with error busy, at once
  wait @1;  # queued in the broker until a server frees up or the deadline passes
}

# Caller -> broker, with the request frame's fd when it has a frame, verified as a Publish's
# frame; or, with no fd, a slot of the caller's pool for calls (frame.pool != 0). `call` is the
# caller's own id, unique among its calls in flight.
struct Call {
  service @0 :Text;
  call @1 :UInt64;
  deadlineMs @2 :UInt32;  # 1 to the broker's --max-call-deadline-ms
  whenBusy @3 :WhenBusy;
  frame @4 :Frame;
  hasFrame @5 :Bool;      # false: a request of no bytes (no fd; `frame` ignored)
}

# Broker -> the chosen server, with a read-only reopening of the request frame's fd when it has
# a frame of its own; a pool frame comes with no fd (its pool was attached before), and its
# sequence is the number the server releases it by. `call` is the broker's id for the call.
struct Request {
  service @0 :Text;
  call @1 :UInt64;
  caller @2 :UInt64;      # the caller's client id, for logs
  deadlineMs @3 :UInt32;  # what is left of the caller's deadline
  frame @4 :Frame;
  hasFrame @5 :Bool;
  guarantee @6 :Guarantee;  # what the broker verified the frame's fd at
}

enum CallError {
  none @0;
  noServer @1;      # no client offers the service
  busy @2;          # every server at its bound and whenBusy = fail, or the caller at its own
  deadline @3;      # the deadline passed
  serverGone @4;    # the server died or withdrew with the call in flight
  serverError @5;   # the server answered with an error, or its response was refused
  cancelled @6;     # the caller cancelled it (CancelCall)
}

# Server -> broker: a response to call `call` (the broker's id), with its frame's fd if it has a
# frame. `last` ends the call; an error is always last.
struct Respond {
  call @0 :UInt64;
  last @1 :Bool;
  hasFrame @2 :Bool;
  frame @3 :Frame;
  error @4 :CallError;    # none, or serverError
  message @5 :Text;
}

# Broker -> caller: a response (or the call's failure) to its call `call` (the caller's id).
struct Response {
  call @0 :UInt64;
  last @1 :Bool;
  hasFrame @2 :Bool;
  frame @3 :Frame;
  guarantee @4 :Guarantee;
  error @5 :CallError;
  message @6 :Text;
}

# Caller -> broker: give up call `call` (the caller's id).
struct CancelCall {
  call @0 :UInt64;
}

enum CancelReason {
  callerGone @0;  # the caller disconnected
  deadline @1;    # the caller's deadline passed
  cancelled @2;   # the caller sent CancelCall
}

# Broker -> server: call `call` (the broker's id) is over for its caller; drop its work. A
# Respond to it after this is dropped and counted, not refused (the two may cross).
struct Cancel {
  call @0 :UInt64;
  reason @1 :CancelReason;
}

# Version 6. Broker -> client: the pool for calls `pool`, attached earlier, is gone (its owner
# left). No frame of it follows; the client unmaps it once it holds no frame of it.
struct PoolDetach {
  pool @0 :UInt32;
}
