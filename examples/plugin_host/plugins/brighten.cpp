// A sample plugin in C++: brightens by a fixed amount, saturating.
#include <algorithm>
#include <cstdint>

#include "../shmfd_plugin.h"

namespace {

int process(const shmfd_plugin_input* in, shmfd_plugin_output* out) {
  for (std::uint32_t y = 0; y < in->height; ++y) {
    const std::uint8_t* src = in->data + static_cast<std::uint64_t>(y) * in->stride;
    std::uint8_t* dst = out->data + static_cast<std::uint64_t>(y) * out->stride;
    for (std::uint32_t x = 0; x < in->width * 4; ++x) {
      dst[x] = (x % 4 == 3) ? src[x] : static_cast<std::uint8_t>(std::min(255, src[x] + 40));
    }
  }
  return 0;
}

}  // namespace

extern "C" const shmfd_plugin* shmfd_plugin_entry() {
  static const shmfd_plugin plugin{SHMFD_PLUGIN_ABI_VERSION, "brighten", process};
  return &plugin;
}
