// Who may do what. One rule for everything: root and the broker's own uid may do anything;
// everyone else needs the policy (policy.hpp) to grant each right, and without a policy may not
// even connect.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "policy.hpp"
#include "refusal.hpp"

namespace shmfd::broker {

struct ClientState;

// Root, or the uid the broker runs as.
bool is_operator(uid_t uid);

// Why a connection from `uid` is refused before it says anything, or nullopt when it may go on.
std::optional<std::string> connection_refused(const Policy* policy, uid_t uid);

// Whether `who` may use `right` on `topic` (introspect ignores the topic); a PERMISSION_DENIED
// refusal naming the uid and the right when not.
Outcome check_access(const Policy* policy, const ClientState& who, Right right,
                     const std::string& topic);

}  // namespace shmfd::broker
