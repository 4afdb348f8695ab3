/* A C11 program built against an installed shmfd's C API (shmfd.h, libshmfd-c): a producer and
 * a consumer in one process, N pool frames through the broker, each checked byte by byte.
 *   c-app SOCKET TOPIC N */
#include <shmfd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "c-app: %s: %s: %s\n", what, shmfd_status_name(shmfd_last_error()),
          shmfd_last_error_message());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) return fprintf(stderr, "usage: c-app SOCKET TOPIC N\n"), 2;
  const unsigned long n = strtoul(argv[3], NULL, 10);
  shmfd_producer* p;
  shmfd_consumer* c;
  if (shmfd_producer_connect(argv[1], "c-app", 0, &p)) return fail("connect");
  if (shmfd_producer_advertise(p, argv[2], SHMFD_LAYOUT_IMAGE, SHMFD_GUARANTEE_POOL))
    return fail("advertise");
  if (shmfd_consumer_connect(argv[1], "c-app", 0, &c)) return fail("connect");
  if (shmfd_consumer_subscribe(c, argv[2], 2, SHMFD_BLOCK_PRODUCER, NULL)) return fail("subscribe");
  shmfd_layout layout;
  if (shmfd_image_layout(SHMFD_PIXEL_I420, 321, 241, 1, &layout)) return fail("layout");
  const size_t size = shmfd_layout_extent(&layout);
  uint32_t pool;
  if (shmfd_producer_create_pool(p, argv[2], size, 3, 0, &pool)) return fail("create_pool");
  for (unsigned long i = 1; i <= n; ++i) {
    shmfd_slot slot;
    if (shmfd_producer_acquire(p, pool, 0, &slot)) return fail("acquire");
    memset(slot.data, (int)(i % 251), size);
    if (shmfd_producer_publish_slot(p, argv[2], &slot, &layout, 0, NULL)) return fail("publish");
    shmfd_event* ev;
    if (shmfd_consumer_receive(c, 5000, &ev)) return fail("receive");
    const shmfd_frame* f = ev ? shmfd_event_frame(ev) : NULL;
    if (!f) return fprintf(stderr, "c-app: no frame %lu\n", i), 1;
    for (size_t b = 0; b < size; ++b) {
      if (shmfd_frame_data(f)[b] != i % 251)
        return fprintf(stderr, "c-app: frame %lu is wrong\n", i), 1;
    }
    shmfd_event_free(ev);
  }
  shmfd_consumer_close(c);
  shmfd_producer_close(p);
  printf("c-app: %lu frames, all intact\n", n);
  return 0;
}
