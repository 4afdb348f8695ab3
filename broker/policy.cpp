#include "policy.hpp"

#include <sys/stat.h>

#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>

#include <fstream>
#include <sstream>

namespace shmfd::broker {
namespace {

Result<unsigned> parse_id(const std::string& text) {
  std::size_t used = 0;
  unsigned long n = 0;
  try {
    n = std::stoul(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || n > 0xfffffffeUL) {
    return fail(Errc::invalid_configuration, "'" + text + "' is not a numeric id");
  }
  return static_cast<unsigned>(n);
}

}  // namespace

std::string_view to_string(Right right) noexcept {
  switch (right) {
    case Right::publish:
      return "publish";
    case Right::subscribe:
      return "subscribe";
    case Right::introspect:
      return "introspect";
    case Right::serve:
      return "serve";
    case Right::call:
      return "call";
  }
  return "?";
}

Result<Policy> Policy::load(const std::string& path) {
  // An ifstream opens a directory and reads nothing from it: that would be an empty policy.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return fail_errno(S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                      "policy " + path + " is not a regular file; pass the policy file itself");
  }
  std::ifstream in(path);
  if (!in) return fail_errno(errno, "open policy " + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Result<Policy> Policy::parse(std::string_view text, const std::string& origin) {
  Policy policy;
  std::istringstream lines{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string right, pattern, who;
    if (!(words >> right)) continue;  // blank or comment
    const auto where = [&] { return origin + ":" + std::to_string(number) + ": "; };
    Rule rule{};
    if (right == "publish")
      rule.right = Right::publish;
    else if (right == "subscribe")
      rule.right = Right::subscribe;
    else if (right == "introspect")
      rule.right = Right::introspect;
    else if (right == "serve")
      rule.right = Right::serve;
    else if (right == "call")
      rule.right = Right::call;
    else
      return fail(
          Errc::invalid_configuration,
          where() + "unknown right '" + right + "' (publish, subscribe, serve, call, introspect)");
    if (!(words >> pattern))
      return fail(Errc::invalid_configuration, where() + "missing topic pattern");
    rule.pattern = pattern;
    while (words >> who) {
      Subject s;
      const auto colon = who.find(':');
      const std::string kind = who.substr(0, colon);
      const std::string value = colon == std::string::npos ? "" : who.substr(colon + 1);
      if (who == "*") {
        s.kind = Subject::anyone;
      } else if (kind == "uid" || kind == "gid") {
        auto id = parse_id(value);
        if (!id) return fail(Errc::invalid_configuration, where() + id.error().message());
        s.kind = kind == "uid" ? Subject::uid : Subject::gid;
        s.id = *id;
      } else if (kind == "user") {
        const passwd* pw = ::getpwnam(value.c_str());
        if (pw == nullptr)
          return fail(Errc::invalid_configuration, where() + "no user '" + value + "'");
        s.kind = Subject::uid;
        s.id = pw->pw_uid;
      } else if (kind == "group") {
        const group* gr = ::getgrnam(value.c_str());
        if (gr == nullptr)
          return fail(Errc::invalid_configuration, where() + "no group '" + value + "'");
        s.kind = Subject::gid;
        s.id = gr->gr_gid;
      } else {
        return fail(Errc::invalid_configuration,
                    where() + "'" + who + "' is not *, user:, uid:, group: or gid:");
      }
      rule.who.push_back(s);
    }
    if (rule.who.empty())
      return fail(Errc::invalid_configuration, where() + "the rule names nobody");
    policy.rules_.push_back(std::move(rule));
  }
  return policy;
}

bool Policy::allows(const Identity& who, Right right, std::string_view topic) const {
  const std::string name(topic);
  for (const Rule& rule : rules_) {
    if (rule.right != right) continue;
    if (right != Right::introspect && ::fnmatch(rule.pattern.c_str(), name.c_str(), 0) != 0)
      continue;
    for (const Subject& s : rule.who) {
      if (s.kind == Subject::anyone || (s.kind == Subject::uid && s.id == who.uid)) return true;
      if (s.kind == Subject::gid) {
        for (gid_t g : who.gids) {
          if (g == s.id) return true;
        }
      }
    }
  }
  return false;
}

}  // namespace shmfd::broker
