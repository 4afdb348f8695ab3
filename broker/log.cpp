#include "log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace shmfd::broker {
namespace {

// Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM to its device:inode):
// then each line starts with its syslog priority (<3> error ... <7> debug), which journald
// files the line under, and journald adds the time.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return std::string(stream) == std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// "2026-12-01 02:31:56.123" in local time.
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%F %T", &local);
  std::snprintf(text + n, sizeof text - n, ".%03lld", static_cast<long long>(ms));
  return text;
}

}  // namespace

void Logger::write(LogLevel level, std::string_view line) const {
  if (!enabled(level)) return;
  static const bool journal = stderr_is_journal();
  static constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
  static constexpr const char* kPriorities[] = {"<3>", "<4>", "<6>", "<7>"};
  const int i = static_cast<int>(level);
  const std::string text = (journal ? std::string(kPriorities[i]) : timestamp() + " ") +
                           "shmfd-broker: " + kNames[i] + ": " + std::string(line) + "\n";
  std::fputs(text.c_str(), stderr);  // one call per line: lines stay whole
}

}  // namespace shmfd::broker
