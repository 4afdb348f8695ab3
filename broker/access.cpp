#include "access.hpp"

#include <unistd.h>

#include "client_state.hpp"

namespace shmfd::broker {

bool is_operator(uid_t uid) {
  return uid == 0 || uid == ::geteuid();
}

std::optional<std::string> connection_refused(const Policy* policy, uid_t uid) {
  if (policy != nullptr || is_operator(uid)) return std::nullopt;
  return "only uid " + std::to_string(::geteuid()) +
         " and root may use this broker; it needs --policy to admit uid " + std::to_string(uid);
}

Outcome check_access(const Policy* policy, const ClientState& who, Right right,
                     const std::string& topic) {
  if (is_operator(who.credentials.uid)) return {};
  if (policy != nullptr && policy->allows(who.identity, right, topic)) return {};
  const std::string what = right == Right::introspect ? "introspect the broker"
                           : right == Right::serve || right == Right::call
                               ? std::string(to_string(right)) + " service '" + topic + "'"
                               : std::string(to_string(right)) + " on '" + topic + "'";
  return refuse(
      proto::ErrorCode::PERMISSION_DENIED,
      "uid " + std::to_string(who.credentials.uid) + " may not " + what +
          (policy ? " (no rule of the broker's policy grants it)" : " (the broker has no policy)"),
      topic);
}

}  // namespace shmfd::broker
