/// @file
/// Guarantee levels: what a receiver of a buffer can rely on, and the memfd seals that enforce
/// it. F_SEAL_SEAL is required by both, so the set of seals a receiver verified is final.
/// Every function here is pure and may be called from any thread.
#pragma once

#include <string>
#include <string_view>

namespace shmfd {

/// What a receiver may rely on, and so which seals a buffer must carry.
enum class Guarantee {
  /// F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL. Immutable: nobody, not even the
  /// producer, can change a byte or the size again. Verify once, trust forever: no
  /// time-of-check/time-of-use window, no SIGBUS.
  sealed,
  /// F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL. The producer keeps the one
  /// writable mapping it had when sealing; nobody can get another (no write(2), no new
  /// PROT_WRITE mapping). The size is fixed, so no SIGBUS. Contents change only when the
  /// producer reuses a slot, which the pool protocol forbids while a consumer holds it. A sealed
  /// buffer also satisfies this level.
  pool
};

/// The seals (F_SEAL_* bits) a buffer must carry for `level`.
unsigned required_seals(Guarantee level) noexcept;
/// Seals of `seals` that are missing for `level`, honouring F_SEAL_WRITE as stronger than
/// F_SEAL_FUTURE_WRITE.
unsigned missing_seals(Guarantee level, unsigned seals) noexcept;
/// "F_SEAL_SHRINK|F_SEAL_GROW", or "none".
std::string seal_names(unsigned seals);
/// "sealed" or "pool".
std::string_view to_string(Guarantee level) noexcept;

}  // namespace shmfd
