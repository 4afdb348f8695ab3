/* The C API guide's producer (docs/c-api.md): 100 NV12 frames on "cam0", written in place into pool slots.
 *   cc -std=c11 producer.c $(pkg-config --cflags --libs shmfd-c) -o producer-c */
#include <shmfd.h>
#include <stdio.h>
#include <string.h>

static int fail(void) {
  fprintf(stderr, "%s\n", shmfd_last_error_message()); /* names the call and what was wrong */
  return 1;
}

int main(int argc, char** argv) {
  shmfd_producer* p;
  if (shmfd_producer_connect(argc > 1 ? argv[1] : NULL, "camera", 0, &p) != SHMFD_OK) {
    return fail(); /* NULL: the default socket */
  }
  shmfd_layout layout;
  uint32_t pool;
  if (shmfd_producer_advertise(p, "cam0", SHMFD_LAYOUT_IMAGE, SHMFD_GUARANTEE_POOL) != SHMFD_OK ||
      shmfd_image_layout(SHMFD_PIXEL_NV12, 640, 480, 1, &layout) != SHMFD_OK || /* planes */
      shmfd_producer_create_pool(p, "cam0", shmfd_layout_extent(&layout), 4, 0, &pool) !=
          SHMFD_OK) {
    return fail();
  }
  for (int i = 0; i < 100; ++i) {
    shmfd_slot slot;
    if (shmfd_producer_acquire(p, pool, 0, &slot) != SHMFD_OK) return fail(); /* waits */
    memset(slot.data, i, shmfd_layout_extent(&layout)); /* "draw" frame i in place */
    if (shmfd_producer_publish_slot(p, "cam0", &slot, &layout, 0, NULL) != SHMFD_OK) return fail();
  }
  shmfd_producer_close(p); /* the topic's subscribers get an end of stream */
  return 0;
}
