#include "log.hpp"

#include <cstdio>
#include <string>

namespace shmfd::broker {

void Logger::write(LogLevel level, std::string_view line) const {
  if (!enabled(level)) return;
  static constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
  const std::string text = "shmfd-broker: " + std::string(kNames[static_cast<int>(level)]) + ": " +
                           std::string(line) + "\n";
  std::fputs(text.c_str(), stderr);  // one call per line: lines stay whole
}

}  // namespace shmfd::broker
