#include "shmfd/connection.hpp"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "shmfd/protocol.hpp"
#include "shmfd/wire/unix_socket.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd {

Result<Connection> Connection::open(const std::string& socket_path, std::string_view client_name,
                                    std::size_t max_message_bytes, bool channels) {
  auto fd = connect_seqpacket(socket_path);
  if (!fd) return fail(std::move(fd.error()));
  Connection conn(std::move(*fd), max_message_bytes);

  ControlMessageBuilder hello;
  auto h = hello.initRoot<proto::Message>().initHello();
  h.setVersion(kProtocolVersion);
  h.setClientName(std::string(client_name));
  h.setChannels(channels);
  auto sent = send_message(conn, hello);
  if (!sent && !sent.error().is(Errc::disconnected)) return fail(std::move(sent.error()));
  // On EPIPE the broker hung up at once; its reason, if any, is waiting to be read.

  auto reply = conn.receive();
  if (!reply) return fail(std::move(reply.error()));
  auto welcome =
      decode_message<proto::Message>(conn.message(*reply), [&](proto::Message::Reader m) -> Status {
        if (m.isError()) return fail(broker_error(m.getError()));
        if (!m.isWelcome()) {
          return fail(Errc::protocol_violation, "the broker answered Hello with something else");
        }
        conn.max_message_bytes_ = m.getWelcome().getMaxMessageBytes();
        conn.version_ = m.getWelcome().getVersion();
        conn.publish_window_ = m.getWelcome().getPublishWindow();
        if (!m.getWelcome().getDoorbell()) return {};
        if (!channels || reply->fds.size() != kFdsPerMessage) {
          return fail(Errc::protocol_violation,
                      "the broker sent a doorbell this client did not ask for, or none with it");
        }
        auto bell = PeerBell::accept(std::move(reply->fds[0]));
        if (!bell) return fail(std::move(bell.error()).prefixed("the broker's doorbell"));
        conn.bell_ = std::move(*bell);
        return {};
      });
  if (!welcome) return fail(std::move(welcome.error()).prefixed("connect to " + socket_path));
  return conn;
}

Result<SendStatus> Connection::send(std::span<const std::byte> bytes, std::span<const int> fds,
                                    IoMode mode) {
  auto sent = send_message(fd_.get(), bytes, fds, mode);
  // EPIPE: the broker closed its end; ECONNRESET: it closed with our messages unread. Either
  // way it is gone, and the caller hears it as every receive says it.
  if (!sent &&
      (sent.error().is(std::errc::broken_pipe) || sent.error().is(std::errc::connection_reset))) {
    return fail(Errc::disconnected, "the broker closed the connection");
  }
  return sent;
}

Result<ReceivedMessage> Connection::receive(IoMode mode) {
  auto m = receive_message(fd_.get(), buffer_.bytes(), kFdsPerMessage, mode);
  if (m && m->status == RecvStatus::peer_closed) {
    return fail(Errc::disconnected, "the broker closed the connection");
  }
  return m;
}

Result<Connection> Connection::reopen(const std::string& socket_path, std::string_view client_name,
                                      const ReconnectOptions& options, bool channels) {
  const auto start = std::chrono::steady_clock::now();
  auto wait = options.first_wait;
  for (;;) {
    auto connection = open(socket_path, client_name, kMaxMessageBytes, channels);
    if (connection) return connection;
    const auto waited = std::chrono::steady_clock::now() - start;
    if (options.give_up_after.count() > 0 && waited + wait > options.give_up_after) {
      return fail(Error(Errc::disconnected, "reconnecting to " + socket_path + ": gave up after " +
                                                std::to_string(options.give_up_after.count()) +
                                                " ms: " + connection.error().message()));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, options.max_wait);
  }
}

bool channels_wanted() noexcept {
  const char* v = std::getenv("SHMFD_CHANNELS");
  return v == nullptr || std::string_view(v) != "0";
}

}  // namespace shmfd
