#include "shmfd/guarantee.hpp"

#include <fcntl.h>

#include <utility>

namespace shmfd {

unsigned required_seals(Guarantee level) noexcept {
  constexpr unsigned kFixedSize = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  return level == Guarantee::sealed ? kFixedSize | F_SEAL_WRITE : kFixedSize | F_SEAL_FUTURE_WRITE;
}

unsigned missing_seals(Guarantee level, unsigned seals) noexcept {
  // F_SEAL_WRITE forbids every write, so it also does all that F_SEAL_FUTURE_WRITE does.
  if ((seals & F_SEAL_WRITE) != 0) seals |= F_SEAL_FUTURE_WRITE;
  return required_seals(level) & ~seals;
}

std::string seal_names(unsigned seals) {
  static constexpr std::pair<unsigned, const char*> kNames[] = {
      {F_SEAL_SEAL, "F_SEAL_SEAL"},
      {F_SEAL_SHRINK, "F_SEAL_SHRINK"},
      {F_SEAL_GROW, "F_SEAL_GROW"},
      {F_SEAL_WRITE, "F_SEAL_WRITE"},
      {F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"},
      {0x0020 /* F_SEAL_EXEC, Linux 6.3 */, "F_SEAL_EXEC"},
  };
  std::string out;
  for (auto [bit, name] : kNames) {
    if ((seals & bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
    seals &= ~bit;
  }
  if (seals != 0) out += (out.empty() ? "" : "|") + std::to_string(seals);
  return out.empty() ? "none" : out;
}

std::string_view to_string(Guarantee level) noexcept {
  return level == Guarantee::sealed ? "sealed" : "pool";
}

}  // namespace shmfd
