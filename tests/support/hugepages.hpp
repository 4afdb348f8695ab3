// Test support: reserve 2 MiB huge pages for a test when running as root, and give back what
// was there before afterwards.
#pragma once

#include <unistd.h>

#include <fstream>
#include <string>

namespace shmfd::testing {

inline long read_nr_hugepages() {
  std::ifstream in("/proc/sys/vm/nr_hugepages");
  long n = -1;
  in >> n;
  return n;
}

inline bool write_nr_hugepages(long n) {
  std::ofstream out("/proc/sys/vm/nr_hugepages");
  out << n;
  out.close();
  return static_cast<bool>(out) && read_nr_hugepages() == n;
}

// Sets vm.nr_hugepages for its lifetime. ok() says whether the kernel granted it.
class HugePageReservation {
 public:
  explicit HugePageReservation(long pages) : previous_(read_nr_hugepages()) {
    ok_ = ::geteuid() == 0 && previous_ >= 0 && write_nr_hugepages(pages);
  }
  ~HugePageReservation() {
    if (ok_) write_nr_hugepages(previous_);
  }
  HugePageReservation(const HugePageReservation&) = delete;
  HugePageReservation& operator=(const HugePageReservation&) = delete;
  bool ok() const { return ok_; }

 private:
  long previous_;
  bool ok_ = false;
};

}  // namespace shmfd::testing
