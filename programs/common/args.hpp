// Minimal `--name value` / `--flag` parsing for the examples, with clear errors.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "shmfd/wire/parse.hpp"

namespace shmfd::examples {

// The largest count (frames, ticks) an option takes: 2^53, beyond any run and exact in a double.
inline constexpr unsigned long long kMaxCount = 1ULL << 53;

class Args {
 public:
  // `valued` take a value, `flags` do not. Prints `usage` and exits on --help or an error.
  Args(int argc, char** argv, std::set<std::string> valued, std::set<std::string> flags,
       std::string usage)
      : usage_(std::move(usage)) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") exit_with(0, "");
      if (flags.count(arg) != 0) {
        values_[arg] = "1";
      } else if (valued.count(arg) != 0 && i + 1 < argc) {
        values_[arg] = argv[++i];
      } else {
        exit_with(2, "unknown option or missing value: " + arg);
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  // The value of `name` (or `fallback`) as a number from `min` to `max`: digits only, so
  // "-1" or "4294967297" for a 32-bit option is an error, not a wrapped value.
  unsigned long long number(const std::string& name, unsigned long long fallback,
                            unsigned long long min, unsigned long long max) const {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    auto n = parse_number(name, it->second, min, max);
    if (!n) exit_with(2, n.error().message());
    return *n;
  }

 private:
  [[noreturn]] void exit_with(int code, const std::string& error) const {
    if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
    std::fputs(usage_.c_str(), code == 0 ? stdout : stderr);
    std::exit(code);
  }

  std::string usage_;
  std::map<std::string, std::string> values_;
};

}  // namespace shmfd::examples
