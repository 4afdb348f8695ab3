/// @file
/// UniqueFd: the one owning file-descriptor type of shmfd. Move-only; closes on destruction.
#pragma once

#include "shmfd/error.hpp"

namespace shmfd {

/// Owns one file descriptor: move-only, closed on destruction or reset(). Like any value, one
/// thread at a time.
class UniqueFd {
 public:
  /// Owns nothing: get() is -1.
  UniqueFd() noexcept = default;
  /// Explicit: an int never silently becomes an owner.
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  /// Takes `other`'s fd; `other` owns nothing after.
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  /// Closes this one's fd, then takes `other`'s.
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  /// The fd, still owned; -1 when none.
  int get() const noexcept { return fd_; }
  /// Whether it owns an fd.
  bool valid() const noexcept { return fd_ >= 0; }
  /// valid().
  explicit operator bool() const noexcept { return valid(); }

  /// Gives up ownership without closing.
  [[nodiscard]] int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes the owned fd (if any) and takes `fd`.
  void reset(int fd = -1) noexcept;

  /// A second owning fd for the same open file description, close-on-exec.
  Result<UniqueFd> duplicate() const;

 private:
  int fd_ = -1;
};

}  // namespace shmfd
