#include "shmfd/wire/protocol.hpp"

#include <string>

#include "error_table.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd {

static_assert(kProtocolVersion == proto::PROTOCOL_VERSION);
static_assert(kMinProtocolVersion == proto::MIN_PROTOCOL_VERSION);

namespace {
std::string unknown(std::string_view what, auto value) {
  return "unknown " + std::string(what) + " " + std::to_string(static_cast<unsigned>(value));
}
}  // namespace

proto::LayoutKind to_proto(LayoutKind kind) noexcept {
  switch (kind) {
    case LayoutKind::blob:
      return proto::LayoutKind::BLOB;
    case LayoutKind::image:
      return proto::LayoutKind::IMAGE;
    case LayoutKind::audio:
      return proto::LayoutKind::AUDIO;
    case LayoutKind::tensor:
      return proto::LayoutKind::TENSOR;
  }
  return proto::LayoutKind::BLOB;  // not reached: every value is a case
}

Result<LayoutKind> layout_kind_from_proto(proto::LayoutKind kind) {
  switch (kind) {
    case proto::LayoutKind::BLOB:
      return LayoutKind::blob;
    case proto::LayoutKind::IMAGE:
      return LayoutKind::image;
    case proto::LayoutKind::AUDIO:
      return LayoutKind::audio;
    case proto::LayoutKind::TENSOR:
      return LayoutKind::tensor;
  }
  return fail(Errc::malformed_message, unknown("layout kind", kind));
}

proto::Backpressure to_proto(Backpressure policy) noexcept {
  switch (policy) {
    case Backpressure::drop_oldest:
      return proto::Backpressure::DROP_OLDEST;
    case Backpressure::block_producer:
      return proto::Backpressure::BLOCK_PRODUCER;
    case Backpressure::latest:  // drop-oldest with a depth of 1 on the wire
      return proto::Backpressure::DROP_OLDEST;
  }
  return proto::Backpressure::DROP_OLDEST;  // not reached: every value is a case
}

Result<Backpressure> backpressure_from_proto(proto::Backpressure policy) {
  switch (policy) {
    case proto::Backpressure::DROP_OLDEST:
      return Backpressure::drop_oldest;
    case proto::Backpressure::BLOCK_PRODUCER:
      return Backpressure::block_producer;
  }
  return fail(Errc::malformed_message, unknown("backpressure policy", policy));
}

std::string_view to_string(proto::ErrorCode code) noexcept {
  // BrokerErrc numbers its codes as the wire does (same_numbers below).
  const auto* info = detail::broker_errc_info(static_cast<int>(code));
  return info != nullptr ? info->name : "unknown-error";
}

proto::Guarantee to_proto(Guarantee level) noexcept {
  switch (level) {
    case Guarantee::sealed:
      return proto::Guarantee::SEALED;
    case Guarantee::pool:
      return proto::Guarantee::POOL;
  }
  return proto::Guarantee::SEALED;  // not reached: every value is a case
}

Result<Guarantee> guarantee_from_proto(proto::Guarantee level) {
  switch (level) {
    case proto::Guarantee::SEALED:
      return Guarantee::sealed;
    case proto::Guarantee::POOL:
      return Guarantee::pool;
  }
  return fail(Errc::malformed_message, unknown("guarantee level", level));
}

proto::ErrorCode wire_error_code(const Error& error) noexcept {
  using C = proto::ErrorCode;
  if (error.code().category() != error_category()) return C::INTERNAL;
  switch (static_cast<Errc>(error.code().value())) {
    case Errc::not_memfd:
      return C::NOT_MEMFD;
    case Errc::missing_seals:
      return C::MISSING_SEALS;
    case Errc::buffer_too_small:
      return C::BUFFER_TOO_SMALL;
    case Errc::not_readable:
      return C::NOT_READABLE;
    case Errc::invalid_topic_name:
      return C::INVALID_TOPIC_NAME;
    case Errc::layout_unknown_format:
    case Errc::layout_bad_dimensions:
    case Errc::layout_plane_count:
    case Errc::layout_stride_too_small:
    case Errc::layout_plane_too_small:
    case Errc::layout_planes_overlap:
    case Errc::layout_overflow:
    case Errc::layout_out_of_bounds:
    case Errc::invalid_size:  // of a pool (accept_pool)
      return C::INVALID_LAYOUT;
    case Errc::too_many_fds:
    case Errc::fds_truncated:
    case Errc::fd_index_out_of_range:
      return C::WRONG_FD_COUNT;
    case Errc::message_truncated:
    case Errc::limit_exceeded:
      return C::LIMIT_EXCEEDED;
    case Errc::invalid_metadata:
      return C::INVALID_METADATA;
    default:
      return C::MALFORMED_MESSAGE;
  }
}

namespace {

// The public spelling of a wire code. A switch without default: a code added to the schema and
// not here fails the build (-Wswitch, -Werror).
constexpr BrokerErrc to_broker_errc(proto::ErrorCode code) noexcept {
  using C = proto::ErrorCode;
  switch (code) {
    case C::PROTOCOL_VERSION:
      return BrokerErrc::protocol_version;
    case C::MALFORMED_MESSAGE:
      return BrokerErrc::malformed_message;
    case C::NOT_MEMFD:
      return BrokerErrc::not_memfd;
    case C::MISSING_SEALS:
      return BrokerErrc::missing_seals;
    case C::BUFFER_TOO_SMALL:
      return BrokerErrc::buffer_too_small;
    case C::INVALID_LAYOUT:
      return BrokerErrc::invalid_layout;
    case C::LIMIT_EXCEEDED:
      return BrokerErrc::limit_exceeded;
    case C::UNKNOWN_TOPIC:
      return BrokerErrc::unknown_topic;
    case C::PERMISSION_DENIED:
      return BrokerErrc::permission_denied;
    case C::INTERNAL:
      return BrokerErrc::internal;
    case C::TOPIC_TAKEN:
      return BrokerErrc::topic_taken;
    case C::NOT_READABLE:
      return BrokerErrc::not_readable;
    case C::INVALID_TOPIC_NAME:
      return BrokerErrc::invalid_topic_name;
    case C::UNEXPECTED_MESSAGE:
      return BrokerErrc::unexpected_message;
    case C::ALREADY_SUBSCRIBED:
      return BrokerErrc::already_subscribed;
    case C::NOT_SUBSCRIBED:
      return BrokerErrc::not_subscribed;
    case C::NOT_HELD:
      return BrokerErrc::not_held;
    case C::SLOT_BUSY:
      return BrokerErrc::slot_busy;
    case C::UNKNOWN_POOL:
      return BrokerErrc::unknown_pool;
    case C::GUARANTEE_MISMATCH:
      return BrokerErrc::guarantee_mismatch;
    case C::WRONG_FD_COUNT:
      return BrokerErrc::wrong_fd_count;
    case C::ALREADY_ADVERTISED:
      return BrokerErrc::already_advertised;
    case C::BAD_SEQUENCE:
      return BrokerErrc::bad_sequence;
    case C::INVALID_METADATA:
      return BrokerErrc::invalid_metadata;
    case C::INVALID_CALL:
      return BrokerErrc::invalid_call;
  }
  return static_cast<BrokerErrc>(code);  // a newer broker's code: its number is kept
}

// The two enums number their codes alike, so an error_code's value is the wire's value.
constexpr bool same_numbers() {
  for (int i = 0; i <= static_cast<int>(proto::ErrorCode::INVALID_CALL); ++i) {
    if (static_cast<int>(to_broker_errc(static_cast<proto::ErrorCode>(i))) != i) return false;
  }
  return true;
}
static_assert(same_numbers());
static_assert(detail::kBrokerErrcTable.size() ==
                  static_cast<std::size_t>(proto::ErrorCode::INVALID_CALL) + 1,
              "a wire error code without its row in error_table.hpp");

}  // namespace

Error broker_error(proto::Error::Reader error) {
  std::string text = "broker refused";
  if (error.hasTopic()) text += " (topic '" + text_of(error.getTopic()) + "'";
  if (error.getSequence() != 0) text += ", frame " + std::to_string(error.getSequence());
  if (error.hasTopic()) text += ")";
  text += ": [" + std::string(to_string(error.getCode())) + "] " + text_of(error.getMessage());
  return Error(make_error_code(to_broker_errc(error.getCode())), text);
}

std::string message_name(proto::Message::Which which) {
  using M = proto::Message;
  switch (which) {
    case M::HELLO:
      return "Hello";
    case M::WELCOME:
      return "Welcome";
    case M::ADVERTISE:
      return "Advertise";
    case M::SUBSCRIBE:
      return "Subscribe";
    case M::PUBLISH:
      return "Publish";
    case M::DELIVER:
      return "Deliver";
    case M::RELEASE:
      return "Release";
    case M::END_OF_STREAM:
      return "EndOfStream";
    case M::ERROR:
      return "Error";
    case M::ADVERTISED:
      return "Advertised";
    case M::SUBSCRIBED:
      return "Subscribed";
    case M::REGISTER_POOL:
      return "RegisterPool";
    case M::POOL_REGISTERED:
      return "PoolRegistered";
    case M::POOL_ATTACH:
      return "PoolAttach";
    case M::SLOT_FREE:
      return "SlotFree";
    case M::INTROSPECT:
      return "Introspect";
    case M::BROKER_STATE:
      return "BrokerState";
    case M::UNSUBSCRIBE:
      return "Unsubscribe";
    case M::UNSUBSCRIBED:
      return "Unsubscribed";
    case M::UNADVERTISE:
      return "Unadvertise";
    case M::UNADVERTISED:
      return "Unadvertised";
    case M::CREDIT:
      return "Credit";
    case M::CHANNEL_REQUEST:
      return "ChannelRequest";
    case M::CHANNEL_PAGE:
      return "ChannelPage";
    case M::CHANNEL_OPEN:
      return "ChannelOpen";
    case M::CHANNEL_STARTED:
      return "ChannelStarted";
    case M::CHANNEL_CLOSE:
      return "ChannelClose";
    case M::DEFINE_LAYOUT:
      return "DefineLayout";
    case M::ROUTE:
      return "Route";
    case M::READ:
      return "Read";
    case M::TOPIC_ADVERTISED:
      return "TopicAdvertised";
    case M::OFFER:
      return "Offer";
    case M::OFFERED:
      return "Offered";
    case M::WITHDRAW:
      return "Withdraw";
    case M::WITHDRAWN:
      return "Withdrawn";
    case M::CALL:
      return "Call";
    case M::REQUEST:
      return "Request";
    case M::RESPOND:
      return "Respond";
    case M::RESPONSE:
      return "Response";
    case M::CANCEL_CALL:
      return "CancelCall";
    case M::CANCEL:
      return "Cancel";
    case M::POOL_DETACH:
      return "PoolDetach";
  }
  return "message type " + std::to_string(static_cast<unsigned>(which));
}

const TopicOptions& service_frame_options() noexcept {
  static const TopicOptions options = [] {
    TopicOptions o;
    o.max_header_bytes = kMaxUserHeaderBytes;
    return o;
  }();
  return options;
}

}  // namespace shmfd
