// The broker's log: one line per event on stderr, filtered by level.
#pragma once

#include <string_view>

#include "options.hpp"

namespace shmfd::broker {

class Logger {
 public:
  explicit Logger(LogLevel level) : level_(level) {}
  bool enabled(LogLevel level) const { return level <= level_; }
  void write(LogLevel level, std::string_view line) const;
  void error(std::string_view line) const { write(LogLevel::error, line); }
  void warn(std::string_view line) const { write(LogLevel::warn, line); }
  void info(std::string_view line) const { write(LogLevel::info, line); }
  void debug(std::string_view line) const { write(LogLevel::debug, line); }

 private:
  LogLevel level_;
};

}  // namespace shmfd::broker
