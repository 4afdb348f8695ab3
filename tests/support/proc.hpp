// Test and benchmark support: fields of /proc files.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace shmfd::testing {

// A "Key:   123 kB" field of a /proc file (status, meminfo, smaps_rollup), in bytes; 0 if
// missing.
inline std::uint64_t proc_kb(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      std::uint64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace shmfd::testing
