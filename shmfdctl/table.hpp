// Plain-text output shared by shmfdctl's views: aligned tables and byte counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shmfd::ctl {

// Prints rows as columns aligned to their widest cell, under `header`.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);
// "0 B", "4.0 KiB", "1.5 MiB", ...
std::string human_bytes(std::uint64_t n);

}  // namespace shmfd::ctl
