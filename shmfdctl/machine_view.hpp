// shmfdctl's views of this machine, which need no broker: `memfds` and `shm` (tables and
// JSON), and `shm --remove-orphans`.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "memfds.hpp"
#include "shm.hpp"

namespace shmfd::ctl {

nlohmann::json memfds_json(const std::vector<MemfdInfo>& found);
void show_memfds(const std::vector<MemfdInfo>& found);
nlohmann::json shm_json(const ShmReport& report);
void show_shm(const ShmReport& report);
// Removes the orphans of `report` that the caller owns (root: all), after asking on stdin
// unless `yes`. Exit status: 0 done (or nothing to do), 1 declined or a removal failed.
int remove_orphans(const ShmReport& report, bool yes);

}  // namespace shmfd::ctl
