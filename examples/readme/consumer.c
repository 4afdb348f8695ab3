/* The C API guide's consumer (docs/c-api.md): every frame of "cam0" until the producer leaves.
 *   cc -std=c11 consumer.c $(pkg-config --cflags --libs shmfd-c) -o consumer-c */
#include <shmfd.h>
#include <stdio.h>

int main(int argc, char** argv) {
  shmfd_consumer* c;
  if (shmfd_consumer_connect(argc > 1 ? argv[1] : NULL, "viewer", 0, &c) != SHMFD_OK ||
      shmfd_consumer_subscribe(c, "cam0", 4, SHMFD_BLOCK_PRODUCER, NULL) != SHMFD_OK) {
    fprintf(stderr, "%s\n", shmfd_last_error_message());
    return 1;
  }
  puts("subscribed to cam0");
  fflush(stdout);
  int frames = 0, intact = 0, status = 1;
  shmfd_event* ev;
  while (shmfd_consumer_receive(c, -1, &ev) == SHMFD_OK) { /* -1: wait; 0: poll; N: ms */
    const shmfd_frame* f = shmfd_event_frame(ev);          /* NULL for an end of stream */
    if (f) {
      const uint8_t* data = shmfd_frame_data(f); /* read-only, not copied */
      intact += data[0] == (uint8_t)frames;
      ++frames;
    }
    const int end = shmfd_event_get_kind(ev) == SHMFD_EVENT_END_OF_STREAM;
    if (end) {
      printf("%d frames, %d intact, %llu dropped; %s\n", frames, intact,
             (unsigned long long)shmfd_event_dropped(ev), shmfd_event_reason(ev));
      status = 0;
    }
    shmfd_event_free(ev); /* releases the frame */
    if (end) break;
  }
  shmfd_consumer_close(c);
  return status;
}
