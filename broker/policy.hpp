// The broker's access policy: who may publish, subscribe, serve, call or introspect, per topic
// or service pattern.
//
// A policy file has one rule per line; `#` starts a comment:
//
//   # RIGHT     TOPIC-PATTERN   WHO...
//   publish     camera/*        user:camera group:video
//   subscribe   camera/*        *
//   serve       blur            user:worker
//   call        blur            group:video
//   introspect  *               group:adm uid:1000
//
// RIGHT is publish (advertise and register pools), subscribe, serve (offer a service), call
// (call one), or introspect (shmfdctl). TOPIC-PATTERN is a shell glob (fnmatch) over topic names
// (service names for serve and call: a separate namespace with the same rules); introspect
// ignores it.
// WHO is `*` (anyone), user:NAME, uid:N, group:NAME or gid:N; a client matches a group through
// its primary or any supplementary group (SO_PEERGROUPS). A right is granted when any rule
// grants it. root and the broker's own uid always have every right.
//
// Without a policy, only root and the broker's own uid may connect at all.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "shmfd/error.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd::broker {

enum class Right { publish, subscribe, introspect, serve, call };
std::string_view to_string(Right right) noexcept;
using shmfd::to_string;  // keep the library's overloads visible beside this one

struct Identity {
  uid_t uid = 0;
  std::vector<gid_t> gids;  // primary first
};

class Policy {
 public:
  // Parses a policy file; errors name the file, the line and what is wrong with it.
  static Result<Policy> load(const std::string& path);
  static Result<Policy> parse(std::string_view text, const std::string& origin);

  bool allows(const Identity& who, Right right, std::string_view topic) const;

 private:
  struct Subject {
    enum Kind { anyone, uid, gid } kind = anyone;
    unsigned id = 0;
  };
  struct Rule {
    Right right;
    std::string pattern;
    std::vector<Subject> who;
  };
  std::vector<Rule> rules_;
};

}  // namespace shmfd::broker
