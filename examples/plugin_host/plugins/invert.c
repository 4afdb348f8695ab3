/* A sample plugin in C: inverts the colours, keeps alpha. */
#include "../shmfd_plugin.h"

static int process(const shmfd_plugin_input* in, shmfd_plugin_output* out) {
  for (uint32_t y = 0; y < in->height; ++y) {
    const uint8_t* src = in->data + (uint64_t)y * in->stride;
    uint8_t* dst = out->data + (uint64_t)y * out->stride;
    for (uint32_t x = 0; x < in->width * 4; x += 4) {
      dst[x] = (uint8_t)(255 - src[x]);
      dst[x + 1] = (uint8_t)(255 - src[x + 1]);
      dst[x + 2] = (uint8_t)(255 - src[x + 2]);
      dst[x + 3] = src[x + 3];
    }
  }
  return 0;
}

const shmfd_plugin* shmfd_plugin_entry(void) {
  static const shmfd_plugin plugin = {SHMFD_PLUGIN_ABI_VERSION, "invert", process};
  return &plugin;
}
