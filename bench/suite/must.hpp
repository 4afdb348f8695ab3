// The suite's way with a failed set-up step: it is a broken benchmark, not a figure, so the
// process dies naming the step.
#pragma once

#include <string>
#include <utility>

#include "common.hpp"
#include "shmfd/error.hpp"

namespace bench {

template <typename T>
T must(shmfd::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().message());
  return std::move(*r);
}
inline void must(const shmfd::Status& s, const char* what) {
  if (!s) die(std::string(what) + ": " + s.error().message());
}

}  // namespace bench
