/* A deliberately faulty sample plugin: it segfaults on one frame (SHMFD_FAULTY_FRAME, default
 * 3), to show that a crashing plugin takes down only its own runner process. */
#include <stdlib.h>

#include "../shmfd_plugin.h"

static int process(const shmfd_plugin_input* in, shmfd_plugin_output* out) {
  const char* env = getenv("SHMFD_FAULTY_FRAME");
  const uint64_t bad = env ? strtoull(env, NULL, 10) : 3;
  if (in->sequence == bad) {
    volatile uint8_t* nowhere = NULL;
    *nowhere = 1; /* SIGSEGV */
  }
  for (uint32_t y = 0; y < in->height; ++y) {
    for (uint32_t x = 0; x < in->width * 4; ++x) {
      out->data[(uint64_t)y * out->stride + x] = in->data[(uint64_t)y * in->stride + x];
    }
  }
  return 0;
}

const shmfd_plugin* shmfd_plugin_entry(void) {
  static const shmfd_plugin plugin = {SHMFD_PLUGIN_ABI_VERSION, "faulty", process};
  return &plugin;
}
