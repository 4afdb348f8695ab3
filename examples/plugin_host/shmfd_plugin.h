/* The shmfd plugin ABI: a plain C interface, so plugins can be written in C or C++ and built
 * with any compiler. A plugin is a shared object exporting shmfd_plugin_entry(). The host runs
 * each plugin in a child process of its own (shmfd-plugin-runner), so a plugin that crashes
 * takes down only its runner; frames reach it through shmfd without a copy.
 */
#ifndef SHMFD_PLUGIN_H
#define SHMFD_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMFD_PLUGIN_ABI_VERSION 1

/* An RGBA image (4 bytes per pixel, R G B A). */
typedef struct shmfd_plugin_input {
  const uint8_t* data; /* read-only: the producer's sealed pages */
  uint32_t width;
  uint32_t height;
  uint32_t stride; /* bytes from one row to the next */
  uint64_t sequence;
} shmfd_plugin_input;

typedef struct shmfd_plugin_output {
  uint8_t* data; /* the same width, height and stride as the input, zero-filled */
  uint32_t width;
  uint32_t height;
  uint32_t stride;
} shmfd_plugin_output;

typedef struct shmfd_plugin {
  uint32_t abi_version; /* SHMFD_PLUGIN_ABI_VERSION */
  const char* name;
  /* Fills `out` from `in`. Returns 0 on success, anything else to reject the frame. */
  int (*process)(const shmfd_plugin_input* in, shmfd_plugin_output* out);
} shmfd_plugin;

/* The one symbol a plugin exports. */
const shmfd_plugin* shmfd_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* SHMFD_PLUGIN_H */
