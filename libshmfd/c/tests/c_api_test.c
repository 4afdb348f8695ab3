/* The C API end to end, in C11 (-std=c11 -Wall -Wextra -Werror -Wpedantic), through a real
 * shmfd-broker: pool and sealed frames, layouts, a pollable consumer, timeouts, end of stream,
 * the broker's refusals, the caller's mistakes, and a broker that dies. Every fd and memfd
 * mapping this process had at the start must be all it has at the end.
 *
 *   shmfd_c_api_test PATH/TO/shmfd-broker
 */
#define _GNU_SOURCE
#include <shmfd.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
static char socket_path[256];
static char socket_dir[128];
static pid_t broker = -1;

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error %s: %s\n", __FILE__, __LINE__, #cond, \
              shmfd_status_name(shmfd_last_error()), shmfd_last_error_message());                \
      ++failures;                                                                                \
    }                                                                                            \
  } while (0)
/* A call that must succeed; the test cannot go on without it. */
#define MUST(call)                                                          \
  do {                                                                      \
    shmfd_status must_status_ = (call);                                     \
    if (must_status_ != SHMFD_OK) {                                         \
      fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,     \
              shmfd_status_name(must_status_), shmfd_last_error_message()); \
      stop_broker();                                                        \
      exit(1);                                                              \
    }                                                                       \
  } while (0)

static void stop_broker(void) {
  if (broker > 0) {
    kill(broker, SIGTERM);
    waitpid(broker, NULL, 0);
    broker = -1;
  }
}

static void start_broker(const char* binary) {
  snprintf(socket_dir, sizeof socket_dir, "/tmp/shmfd-c-api-XXXXXX");
  if (!mkdtemp(socket_dir)) {
    perror("mkdtemp");
    exit(1);
  }
  snprintf(socket_path, sizeof socket_path, "%s/broker.sock", socket_dir);
  broker = fork();
  if (broker == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* no broker outlives a test that died */
    execl(binary, binary, "--socket", socket_path, "--log-level", "warn", (char*)NULL);
    perror("exec shmfd-broker");
    _exit(127);
  }
  for (int i = 0; i < 200; ++i) {
    struct stat st;
    if (stat(socket_path, &st) == 0) return;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "the broker did not start\n");
  stop_broker();
  exit(1);
}

static int count_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent* e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* Mappings of memfds: frames, pools, channel pages. (Not every mapping: a sanitizer's
 * allocator maps memory of its own at any time; LeakSanitizer checks the heap.) */
static int count_maps_of(const char* name) {
  FILE* f = fopen("/proc/self/maps", "r");
  int n = 0;
  char line[512];
  while (fgets(line, sizeof line, f)) n += strstr(line, name) != NULL;
  fclose(f);
  return n;
}

static int count_memfd_maps(void) {
  return count_maps_of("/memfd:");
}

/* Whether `p` lies in a mapping this process cannot write (/proc/self/maps says "r--"). */
static int mapped_read_only(const void* p) {
  FILE* f = fopen("/proc/self/maps", "r");
  unsigned long start, end;
  char perms[8];
  int found = 0, read_only = 0;
  char line[512];
  while (!found && fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3) continue;
    if ((unsigned long)p >= start && (unsigned long)p < end) {
      found = 1;
      read_only = perms[0] == 'r' && perms[1] == '-';
    }
  }
  fclose(f);
  return read_only;
}

/* The byte at `i` of frame `sequence`. */
static uint8_t pattern(uint64_t sequence, size_t i) {
  return (uint8_t)(sequence * 31 + i * 7);
}

static void test_errors_before_any_broker(void) {
  shmfd_producer* p = NULL;
  CHECK(shmfd_producer_connect("/nonexistent/shmfd.sock", "c", 0, &p) == SHMFD_E_SYSTEM);
  CHECK(shmfd_last_error() == SHMFD_E_SYSTEM);
  CHECK(shmfd_last_error_errno() == ENOENT);
  CHECK(strstr(shmfd_last_error_message(), "/nonexistent/shmfd.sock") != NULL);
  /* The message names the call first, then the system call and what it said. */
  CHECK(strncmp(shmfd_last_error_message(), "shmfd_producer_connect: connect(", 32) == 0);
  CHECK(p == NULL);
  CHECK(shmfd_producer_connect(socket_path, "c", 0, NULL) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "out is NULL") != NULL);
  shmfd_consumer* c = NULL;
  CHECK(shmfd_consumer_connect(socket_path, "c", 0x80, &c) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "unknown flags 0x80") != NULL);
  CHECK(c == NULL);
  CHECK(shmfd_producer_advertise(NULL, "t", SHMFD_LAYOUT_BLOB, SHMFD_GUARANTEE_POOL) ==
        SHMFD_E_INVALID_ARGUMENT);
  CHECK(strcmp(shmfd_status_name(-5), "unknown shmfd_status") == 0);
  CHECK(strcmp(shmfd_status_name(1000), "unknown shmfd_status") == 0);

  shmfd_layout l;
  CHECK(shmfd_image_layout(SHMFD_PIXEL_NV12, 641, 480, 1, &l) == SHMFD_OK);
  CHECK(shmfd_image_layout(99, 640, 480, 1, &l) == SHMFD_E_LAYOUT_UNKNOWN_FORMAT);
  CHECK(shmfd_image_layout(SHMFD_PIXEL_RGBA8, 0, 480, 1, &l) == SHMFD_E_LAYOUT_BAD_DIMENSIONS);
  CHECK(shmfd_image_layout(SHMFD_PIXEL_RGBA8, 64, 48, 1, &l) == SHMFD_OK);
  CHECK(l.kind == SHMFD_LAYOUT_IMAGE && l.image.plane_count == 1 &&
        l.image.planes[0].stride == 256);
  CHECK(shmfd_layout_extent(&l) == 64 * 48 * 4);
  CHECK(shmfd_layout_check(&l, 64 * 48 * 4) == SHMFD_OK);
  CHECK(shmfd_layout_check(&l, 64 * 48 * 4 - 1) == SHMFD_E_LAYOUT_OUT_OF_BOUNDS);
  l.image.planes[0].stride = 255;
  CHECK(shmfd_layout_check(&l, 1 << 20) == SHMFD_E_LAYOUT_STRIDE_TOO_SMALL);
  l.kind = 9;
  CHECK(shmfd_layout_check(&l, 1 << 20) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "layout kind 9") != NULL);
  CHECK(shmfd_layout_extent(&l) == 0);

  CHECK(shmfd_audio_layout(SHMFD_SAMPLE_S16, 48000, 2, 480, 0, &l) == SHMFD_OK);
  CHECK(l.kind == SHMFD_LAYOUT_AUDIO && shmfd_layout_extent(&l) == 480 * 2 * 2);
  CHECK(shmfd_audio_layout(SHMFD_SAMPLE_F32, 48000, 2, 480, 1, &l) == SHMFD_OK);
  CHECK(l.format == SHMFD_SAMPLE_F32 && l.audio.planar == 1 && l.audio.channels == 2);
  CHECK(l.audio.plane_stride == 480 * 4 && l.audio.sample_rate == 48000);
  CHECK(shmfd_layout_extent(&l) == 480 * 4 * 2);
  /* NV12 with rows aligned to 64 bytes: Y, then UV at half height, both 128 bytes a row. */
  CHECK(shmfd_image_layout(SHMFD_PIXEL_NV12, 99, 37, 64, &l) == SHMFD_OK);
  CHECK(l.format == SHMFD_PIXEL_NV12 && l.image.width == 99 && l.image.height == 37);
  CHECK(l.image.plane_count == 2 && l.image.planes[0].offset == 0);
  CHECK(l.image.planes[0].stride == 128 && l.image.planes[1].stride == 128);
  CHECK(l.image.planes[1].offset == 128 * 37 && l.image.planes[1].size == 128 * 19);
  const uint64_t shape[3] = {2, 3, 4};
  CHECK(shmfd_tensor_layout(SHMFD_DTYPE_F32, 3, shape, &l) == SHMFD_OK);
  CHECK(l.tensor.rank == 3 && l.tensor.strides[0] == 48 && l.tensor.strides[2] == 4);
  CHECK(shmfd_tensor_layout(SHMFD_DTYPE_F32, 3, NULL, &l) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(shmfd_blob_layout(100, &l) == SHMFD_OK && shmfd_layout_extent(&l) == 100);

  char path[8];
  const size_t need = shmfd_default_socket_path(path, sizeof path);
  CHECK(need > 0 && strlen(path) == (need < sizeof path ? need : sizeof path - 1));
  /* Every status has its own constant's name (the library reads them from the table that
   * C++ and Python share). */
#define CHECK_NAME(status) CHECK(strcmp(shmfd_status_name(status), #status) == 0)
  CHECK_NAME(SHMFD_OK);
  CHECK_NAME(SHMFD_E_NOT_MEMFD);
  CHECK_NAME(SHMFD_E_MISSING_SEALS);
  CHECK_NAME(SHMFD_E_BUFFER_TOO_SMALL);
  CHECK_NAME(SHMFD_E_NOT_READABLE);
  CHECK_NAME(SHMFD_E_INVALID_SIZE);
  CHECK_NAME(SHMFD_E_HUGE_PAGES_UNAVAILABLE);
  CHECK_NAME(SHMFD_E_TOO_MANY_FDS);
  CHECK_NAME(SHMFD_E_FDS_TRUNCATED);
  CHECK_NAME(SHMFD_E_MESSAGE_TRUNCATED);
  CHECK_NAME(SHMFD_E_EMPTY_MESSAGE);
  CHECK_NAME(SHMFD_E_LAYOUT_UNKNOWN_FORMAT);
  CHECK_NAME(SHMFD_E_LAYOUT_BAD_DIMENSIONS);
  CHECK_NAME(SHMFD_E_LAYOUT_PLANE_COUNT);
  CHECK_NAME(SHMFD_E_LAYOUT_STRIDE_TOO_SMALL);
  CHECK_NAME(SHMFD_E_LAYOUT_PLANE_TOO_SMALL);
  CHECK_NAME(SHMFD_E_LAYOUT_PLANES_OVERLAP);
  CHECK_NAME(SHMFD_E_LAYOUT_OVERFLOW);
  CHECK_NAME(SHMFD_E_LAYOUT_OUT_OF_BOUNDS);
  CHECK_NAME(SHMFD_E_MALFORMED_MESSAGE);
  CHECK_NAME(SHMFD_E_FD_INDEX_OUT_OF_RANGE);
  CHECK_NAME(SHMFD_E_INVALID_TOPIC_NAME);
  CHECK_NAME(SHMFD_E_BROKER_REFUSED);
  CHECK_NAME(SHMFD_E_PROTOCOL_VIOLATION);
  CHECK_NAME(SHMFD_E_DISCONNECTED);
  CHECK_NAME(SHMFD_E_NO_FREE_SLOT);
  CHECK_NAME(SHMFD_E_INVALID_ARGUMENT);
  CHECK_NAME(SHMFD_E_INVALID_CONFIGURATION);
  CHECK_NAME(SHMFD_E_LIMIT_EXCEEDED);
  CHECK_NAME(SHMFD_E_SYSTEM);
  CHECK_NAME(SHMFD_E_INTERNAL);
#undef CHECK_NAME
  CHECK(shmfd_event_get_kind(NULL) == SHMFD_EVENT_NONE);
}

/* Pool frames of an odd-sized NV12 image on a channel (the default): every byte, the layout,
 * the sequence; the consumer's mapping of them is read-only. */
static void test_pool_frames(void) {
  shmfd_producer* p;
  shmfd_consumer* c;
  MUST(shmfd_producer_connect(socket_path, "c-producer", 0, &p));
  MUST(shmfd_producer_advertise(p, "c/pool", SHMFD_LAYOUT_IMAGE, SHMFD_GUARANTEE_POOL));
  MUST(shmfd_consumer_connect(socket_path, "c-consumer", 0, &c));
  uint32_t depth = 0;
  MUST(shmfd_consumer_subscribe(c, "c/pool", 2, SHMFD_BLOCK_PRODUCER, &depth));
  CHECK(depth == 2);
  shmfd_layout layout;
  MUST(shmfd_image_layout(SHMFD_PIXEL_NV12, 99, 37, 64, &layout));
  uint32_t pool;
  MUST(shmfd_producer_create_pool(p, "c/pool", shmfd_layout_extent(&layout), 3, 0, &pool));
  const size_t extent = shmfd_layout_extent(&layout);
  for (uint64_t i = 1; i <= 300; ++i) {
    shmfd_slot slot;
    MUST(shmfd_producer_acquire(p, pool, 0, &slot));
    CHECK(slot.pool == pool && slot.size >= extent && slot.size % 4096 == 0);
    for (size_t b = 0; b < extent; ++b) slot.data[b] = pattern(i, b);
    uint64_t sequence = 0;
    MUST(shmfd_producer_publish_slot(p, "c/pool", &slot, &layout, 1000 + i, &sequence));
    CHECK(sequence == i);
    shmfd_event* ev = NULL;
    MUST(shmfd_consumer_receive(c, 5000, &ev));
    CHECK(ev != NULL);
    if (!ev) break;
    CHECK(shmfd_event_get_kind(ev) == SHMFD_EVENT_FRAME);
    CHECK(strcmp(shmfd_event_topic(ev), "c/pool") == 0);
    const shmfd_frame* f = shmfd_event_frame(ev);
    CHECK(f != NULL && shmfd_frame_in_pool(f) == 1);
    CHECK(shmfd_frame_sequence(f) == i && shmfd_frame_timestamp_ns(f) == 1000 + i);
    CHECK(shmfd_frame_dropped(f) == 0);
    CHECK(shmfd_frame_size(f) >= extent);
    CHECK(memcmp(shmfd_frame_layout(f), &layout, sizeof layout) == 0);
    const uint8_t* data = shmfd_frame_data(f);
    size_t wrong = 0;
    for (size_t b = 0; b < extent; ++b) wrong += data[b] != pattern(i, b);
    CHECK(wrong == 0);
    if (i == 1) CHECK(mapped_read_only(data) && !mapped_read_only(&wrong));
    shmfd_event_free(ev);
  }
  /* Unadvertising ends the stream. */
  MUST(shmfd_producer_unadvertise(p, "c/pool"));
  shmfd_event* ev = NULL;
  MUST(shmfd_consumer_receive(c, 5000, &ev));
  CHECK(ev && shmfd_event_get_kind(ev) == SHMFD_EVENT_END_OF_STREAM);
  CHECK(ev && strcmp(shmfd_event_topic(ev), "c/pool") == 0);
  CHECK(ev && shmfd_event_frame(ev) == NULL);
  CHECK(ev && shmfd_event_dropped(ev) == 0); /* block-producer: nothing was lost */
  shmfd_event_free(ev);
  CHECK(shmfd_event_dropped(NULL) == 0);
  /* Nothing more: a timeout gives no event, and no error. */
  ev = (shmfd_event*)&ev;
  CHECK(shmfd_consumer_receive(c, 30, &ev) == SHMFD_OK && ev == NULL);
  CHECK(shmfd_consumer_refusals(c) == 0);
  shmfd_consumer_close(c);
  shmfd_producer_close(p);
}

/* Sealed frames, to a consumer that polls its fd; audio layouts; the broker's refusals. */
static void test_sealed_frames_and_poll(void) {
  shmfd_producer* p;
  shmfd_consumer* c;
  MUST(shmfd_producer_connect(socket_path, "c-sealed", 0, &p));
  MUST(shmfd_producer_advertise(p, "c/audio", SHMFD_LAYOUT_AUDIO, SHMFD_GUARANTEE_SEALED));
  MUST(shmfd_consumer_connect(socket_path, "c-poller", SHMFD_POLLABLE, &c));
  MUST(shmfd_consumer_subscribe(c, "c/audio", 4, SHMFD_DROP_OLDEST, NULL));
  int fd = -1;
  MUST(shmfd_consumer_fd(c, &fd));
  CHECK(fd >= 0);
  shmfd_layout layout;
  MUST(shmfd_audio_layout(SHMFD_SAMPLE_F32, 48000, 2, 480, 1, &layout));
  const size_t extent = shmfd_layout_extent(&layout);
  for (uint64_t i = 1; i <= 50; ++i) {
    shmfd_buffer* b;
    MUST(shmfd_producer_allocate(p, "c/audio", extent, &b));
    CHECK(shmfd_buffer_size(b) == extent);
    for (size_t k = 0; k < extent; ++k) shmfd_buffer_data(b)[k] = pattern(i, k);
    MUST(shmfd_producer_publish_buffer(p, "c/audio", b, &layout, 0, NULL));
    /* Readable may also mean a message that is no event (version 5: what the topic's producer
     * declared): poll again until the frame is there, as shmfd_consumer_fd() says. */
    shmfd_event* ev = NULL;
    for (int tries = 0; tries < 10 && ev == NULL; ++tries) {
      struct pollfd pfd = {fd, POLLIN, 0};
      CHECK(poll(&pfd, 1, 5000) == 1);
      MUST(shmfd_consumer_receive(c, 0, &ev));
    }
    CHECK(ev != NULL);
    if (!ev) break;
    const shmfd_frame* f = shmfd_event_frame(ev);
    CHECK(f && shmfd_frame_in_pool(f) == 0 && shmfd_frame_sequence(f) == i);
    CHECK(f && shmfd_frame_timestamp_ns(f) > 0);
    CHECK(f && memcmp(shmfd_frame_layout(f), &layout, sizeof layout) == 0);
    size_t wrong = 0;
    for (size_t k = 0; f && k < extent; ++k) wrong += shmfd_frame_data(f)[k] != pattern(i, k);
    CHECK(wrong == 0);
    shmfd_event_free(ev);
  }
  /* A buffer that was never published is freed; one published with a layout larger than it is
   * refused by the broker, and the refusal comes back. */
  shmfd_buffer* unused;
  MUST(shmfd_producer_allocate(p, "c/audio", 4096, &unused));
  shmfd_buffer_free(unused);
  shmfd_buffer* small;
  MUST(shmfd_producer_allocate(p, "c/audio", 64, &small));
  shmfd_status refused = shmfd_producer_publish_buffer(p, "c/audio", small, &layout, 0, NULL);
  if (refused == SHMFD_OK) {
    for (int i = 0; i < 200 && (refused = shmfd_producer_poll_error(p)) == SHMFD_OK; ++i) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  CHECK(refused == SHMFD_E_LAYOUT_OUT_OF_BOUNDS || refused == SHMFD_E_BROKER_REFUSED);
  CHECK(strlen(shmfd_last_error_message()) > 0);

  /* A second producer of the topic is refused by the broker, with its reason. */
  shmfd_producer* other;
  MUST(shmfd_producer_connect(socket_path, "c-other", 0, &other));
  CHECK(shmfd_producer_advertise(other, "c/audio", SHMFD_LAYOUT_AUDIO, SHMFD_GUARANTEE_SEALED) ==
        SHMFD_E_BROKER_REFUSED);
  CHECK(shmfd_last_broker_error() == SHMFD_BROKER_TOPIC_TAKEN);
  CHECK(strstr(shmfd_last_error_message(), "c/audio") != NULL);
  CHECK(shmfd_producer_advertise(other, "bad topic!", SHMFD_LAYOUT_BLOB, SHMFD_GUARANTEE_POOL) ==
        SHMFD_E_INVALID_TOPIC_NAME);
  CHECK(shmfd_last_broker_error() == -1);
  CHECK(shmfd_producer_advertise(other, "c/x", 9, SHMFD_GUARANTEE_POOL) ==
        SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "layout kind 9") != NULL);
  CHECK(shmfd_producer_advertise(other, "c/x", SHMFD_LAYOUT_BLOB, -1) == SHMFD_E_INVALID_ARGUMENT);
  shmfd_producer_close(other);

  /* A consumer on channels has no fd to poll, and says why. */
  shmfd_consumer* fast;
  MUST(shmfd_consumer_connect(socket_path, "c-fast", 0, &fast));
  CHECK(shmfd_consumer_fd(fast, &fd) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "SHMFD_POLLABLE") != NULL);
  CHECK(shmfd_consumer_subscribe(fast, "c/audio", 0, 7, NULL) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "SHMFD_LATEST (2)") != NULL);
  /* Latest is drop-oldest with a depth of 1, whatever depth is asked. */
  uint32_t granted = 0;
  MUST(shmfd_consumer_subscribe(fast, "c/latest", 9, SHMFD_LATEST, &granted));
  CHECK(granted == 1);
  shmfd_consumer_close(fast);
  shmfd_consumer_close(c);
  shmfd_producer_close(p);
}

/* A frame held past its consumer's close stays readable; a broker that dies is reported. */
static void test_broker_loss(void) {
  shmfd_producer* p;
  shmfd_consumer* c;
  MUST(shmfd_producer_connect(socket_path, "c-last", 0, &p));
  MUST(shmfd_producer_advertise(p, "c/last", SHMFD_LAYOUT_BLOB, SHMFD_GUARANTEE_POOL));
  MUST(shmfd_consumer_connect(socket_path, "c-last", 0, &c));
  MUST(shmfd_consumer_subscribe(c, "c/last", 0, SHMFD_DROP_OLDEST, NULL));
  uint32_t pool;
  MUST(shmfd_producer_create_pool(p, "c/last", 100, 2, 0, &pool));
  shmfd_layout layout;
  MUST(shmfd_blob_layout(100, &layout));
  shmfd_slot slot;
  MUST(shmfd_producer_acquire(p, pool, SHMFD_NONBLOCK, &slot));
  memset(slot.data, 0x5a, 100);
  MUST(shmfd_producer_publish_slot(p, "c/last", &slot, &layout, 0, NULL));
  shmfd_event* held = NULL;
  MUST(shmfd_consumer_receive(c, 5000, &held));
  CHECK(held && shmfd_event_frame(held));

  stop_broker();
  shmfd_event* ev = NULL;
  CHECK(shmfd_consumer_receive(c, 2000, &ev) == SHMFD_E_DISCONNECTED && ev == NULL);
  shmfd_consumer_close(c);
  if (held && shmfd_event_frame(held)) {
    CHECK(shmfd_frame_data(shmfd_event_frame(held))[99] == 0x5a);
  }
  shmfd_event_free(held);
  shmfd_producer_close(p);
}

/* Frame metadata (C API 1.2): each field round-trips through the broker; a frame that breaks a
 * rule is refused before it is sent, and its slot stays acquired. */
/* Every field through the broker (SHMFD_NO_CHANNELS) or on a channel (0: the first frames go
 * through the broker while the channel opens, so frames go until several have taken it). */
static void test_frame_meta(unsigned flags) {
  shmfd_producer* p;
  shmfd_consumer* c;
  MUST(shmfd_consumer_connect(socket_path, "c-meta-in", flags, &c));
  MUST(shmfd_consumer_subscribe(c, "c/meta", 4, SHMFD_BLOCK_PRODUCER, NULL));
  MUST(shmfd_producer_connect(socket_path, "c-meta-out", flags, &p));
  shmfd_topic_options options;
  memset(&options, 0, sizeof options);
  options.max_header_bytes = 16;
  options.frame_rate_num = 30;
  options.frame_rate_den = 1;
  options.header_schema = "c.Test/1";
  MUST(shmfd_producer_advertise_options(p, "c/meta", SHMFD_LAYOUT_IMAGE, SHMFD_GUARANTEE_POOL,
                                        &options));
  shmfd_layout layout;
  MUST(shmfd_image_layout(SHMFD_PIXEL_RGBA8, 32, 16, 1, &layout));
  uint32_t pool;
  MUST(shmfd_producer_create_pool(p, "c/meta", shmfd_layout_extent(&layout), 2, 0, &pool));
  uint8_t header[5] = {1, 2, 3, 4, 5};
  shmfd_frame_meta meta;
  memset(&meta, 0, sizeof meta);
  meta.fields = SHMFD_META_PTS | SHMFD_META_DURATION | SHMFD_META_CROP;
  meta.duration = 33333333;
  meta.flags = SHMFD_FRAME_DELTA_UNIT | SHMFD_FRAME_MARKER;
  meta.crop_x = 2;
  meta.crop_y = 1;
  meta.crop_width = 28;
  meta.crop_height = 14;
  meta.header = header;
  meta.header_size = sizeof header;
  shmfd_slot slot;
  shmfd_event* ev = NULL;
  const int frames = (flags & SHMFD_NO_CHANNELS) ? 1 : 20;
  for (int i = 0; i < frames; ++i) {
    meta.pts = 123456789 + (uint64_t)i;
    header[4] = (uint8_t)i;
    MUST(shmfd_producer_acquire(p, pool, 0, &slot));
    MUST(shmfd_producer_publish_slot_meta(p, "c/meta", &slot, &layout, &meta, 0, NULL));
    MUST(shmfd_consumer_receive(c, 5000, &ev));
    const shmfd_frame* f = shmfd_event_frame(ev);
    CHECK(f != NULL);
    shmfd_frame_meta got;
    shmfd_frame_get_meta(f, &got);
    CHECK(got.fields == meta.fields && got.pts == meta.pts && got.duration == meta.duration);
    CHECK(got.flags == meta.flags);
    CHECK(got.crop_x == 2 && got.crop_y == 1 && got.crop_width == 28 && got.crop_height == 14);
    CHECK(got.header_size == sizeof header && got.header != header &&
          memcmp(got.header, header, sizeof header) == 0);
    shmfd_event_free(ev);
  }
  /* On channels, the producer's page is mapped here (the producer's and the consumer's). */
  CHECK((count_maps_of("shmfd:channel-producer") > 0) == !(flags & SHMFD_NO_CHANNELS));

  /* A crop outside the image never leaves; the slot is still this producer's. */
  meta.crop_width = 31;
  MUST(shmfd_producer_acquire(p, pool, 0, &slot));
  CHECK(shmfd_producer_publish_slot_meta(p, "c/meta", &slot, &layout, &meta, 0, NULL) ==
        SHMFD_E_INVALID_METADATA);
  CHECK(strstr(shmfd_last_error_message(), "outside the 32x16 image") != NULL);
  meta.fields = 0x100;
  CHECK(shmfd_producer_publish_slot_meta(p, "c/meta", &slot, &layout, &meta, 0, NULL) ==
        SHMFD_E_INVALID_ARGUMENT);
  MUST(shmfd_producer_publish_slot_meta(p, "c/meta", &slot, &layout, NULL, 0, NULL));
  MUST(shmfd_consumer_receive(c, 5000, &ev));
  shmfd_frame_meta got;
  shmfd_frame_get_meta(shmfd_event_frame(ev), &got);
  CHECK(got.fields == 0 && got.flags == 0 && got.header_size == 0);
  shmfd_event_free(ev);
  shmfd_producer_close(p);
  shmfd_consumer_close(c);
}

/* Services: a call with a frame each way, a stream, a server error, no server, a cancel, and a
 * request freed after its server closed. One thread: the caller starts, the server answers. */
static void test_services(void) {
  shmfd_server* server = NULL;
  shmfd_caller* caller = NULL;
  MUST(shmfd_server_connect(socket_path, "c-server", 0, &server));
  MUST(shmfd_caller_connect(socket_path, "c-caller", 0, &caller));
  uint32_t granted = 0;
  MUST(shmfd_server_offer(server, "c/blur", 0, &granted));
  CHECK(granted == 4);
  CHECK(shmfd_server_offer(server, "bad name", 0, NULL) == SHMFD_E_INVALID_TOPIC_NAME);

  shmfd_buffer* request_buffer = NULL;
  MUST(shmfd_buffer_create(4096, &request_buffer));
  memset(shmfd_buffer_data(request_buffer), 7, 4096);
  shmfd_layout layout;
  MUST(shmfd_blob_layout(4096, &layout));
  uint64_t call = 0;
  MUST(shmfd_caller_start(caller, "c/blur", request_buffer, &layout, 5000, 0, &call));
  shmfd_request* request = NULL;
  MUST(shmfd_server_receive(server, 5000, &request));
  CHECK(request != NULL && shmfd_request_cancel_reason(request) == 0);
  CHECK(strcmp(shmfd_request_service(request), "c/blur") == 0);
  const shmfd_frame* in = shmfd_request_frame(request);
  CHECK(in != NULL && shmfd_frame_size(in) == 4096 && shmfd_frame_data(in)[4095] == 7);
  CHECK(in != NULL && mapped_read_only(shmfd_frame_data(in)));
  /* A stream: two frames, then an empty last response. */
  for (int i = 0; i < 2; ++i) {
    shmfd_buffer* out = NULL;
    MUST(shmfd_buffer_create(4096, &out));
    memset(shmfd_buffer_data(out), 10 + i, 4096);
    MUST(shmfd_server_respond(server, request, out, &layout, 0));
  }
  MUST(shmfd_server_respond(server, request, NULL, NULL, 1));
  for (int i = 0; i < 3; ++i) {
    shmfd_response* response = NULL;
    MUST(shmfd_caller_next(caller, call, 5000, &response));
    CHECK(response != NULL);
    const shmfd_frame* f = shmfd_response_frame(response);
    if (i < 2) {
      CHECK(f != NULL && shmfd_frame_data(f)[0] == 10 + i && !shmfd_response_last(response));
    } else {
      CHECK(f == NULL && shmfd_response_last(response));
    }
    shmfd_response_free(response);
  }
  shmfd_request_free(request);
  CHECK(shmfd_caller_next(caller, call, 0, &(shmfd_response*){NULL}) == SHMFD_E_INVALID_ARGUMENT);

  /* The server answers with an error. */
  MUST(shmfd_caller_start(caller, "c/blur", NULL, NULL, 5000, 0, &call));
  MUST(shmfd_server_receive(server, 5000, &request));
  CHECK(shmfd_request_frame(request) == NULL);
  MUST(shmfd_server_respond_error(server, request, "no such kernel"));
  shmfd_request_free(request);
  shmfd_response* response = NULL;
  CHECK(shmfd_caller_next(caller, call, 5000, &response) == SHMFD_E_CALL_FAILED);
  CHECK(shmfd_last_call_error() == SHMFD_CALL_SERVER_ERROR);
  CHECK(strstr(shmfd_last_error_message(), "no such kernel") != NULL);
  CHECK(response == NULL);

  /* A cancel reaches the server as a cancel event. */
  MUST(shmfd_caller_start(caller, "c/blur", NULL, NULL, 5000, 0, &call));
  MUST(shmfd_server_receive(server, 5000, &request));
  const uint64_t id = shmfd_request_id(request);
  MUST(shmfd_caller_cancel(caller, call));
  shmfd_request* cancel = NULL;
  MUST(shmfd_server_receive(server, 5000, &cancel));
  CHECK(cancel != NULL && shmfd_request_cancel_reason(cancel) == 3 &&
        shmfd_request_id(cancel) == id && shmfd_request_frame(cancel) == NULL);
  CHECK(shmfd_server_respond(server, cancel, NULL, NULL, 1) == SHMFD_E_INVALID_ARGUMENT);
  shmfd_request_free(cancel);
  MUST(shmfd_server_respond(server, request, NULL, NULL, 1)); /* over: dropped, no error */

  /* No server left. */
  MUST(shmfd_server_withdraw(server, "c/blur"));
  CHECK(shmfd_caller_call(caller, "c/blur", NULL, NULL, 0, SHMFD_CALL_WAIT, &response) ==
        SHMFD_E_CALL_FAILED);
  CHECK(shmfd_last_call_error() == SHMFD_CALL_NO_SERVER);
  CHECK(shmfd_caller_call(caller, "c/blur", NULL, NULL, 0, 0x10, &response) ==
        SHMFD_E_INVALID_ARGUMENT);
  shmfd_server_close(server);
  /* A request outlives its server's handle: its frame stays mapped until freed. */
  CHECK(in != NULL);
  shmfd_request_free(request);
  shmfd_caller_close(caller);
}

/* Requests and responses in slots of each side's pool: no fd, read in place, each slot busy
 * until the other side frees what it received. */
static void test_service_pools(void) {
  shmfd_server* server = NULL;
  shmfd_caller* caller = NULL;
  MUST(shmfd_server_connect(socket_path, "c-pool-server", 0, &server));
  MUST(shmfd_caller_connect(socket_path, "c-pool-caller", 0, &caller));
  MUST(shmfd_server_offer(server, "c/pooled", 1, NULL));
  uint32_t requests = 0, responses = 0;
  MUST(shmfd_caller_create_pool(caller, 4096, 1, 0, &requests));
  MUST(shmfd_server_create_pool(server, 4096, 1, 0, &responses));
  CHECK(shmfd_caller_create_pool(caller, 4096, 1, 0x40, &requests) == SHMFD_E_INVALID_ARGUMENT);
  shmfd_layout layout;
  MUST(shmfd_blob_layout(4096, &layout));
  for (int round = 0; round < 2; ++round) {
    shmfd_slot slot;
    MUST(shmfd_caller_acquire(caller, requests, 0, &slot));
    CHECK(slot.size == 4096);
    memset(slot.data, 30 + round, slot.size);
    uint64_t call = 0;
    MUST(shmfd_caller_start_slot(caller, "c/pooled", &slot, &layout, 5000, 0, &call));
    shmfd_request* request = NULL;
    MUST(shmfd_server_receive(server, 5000, &request));
    const shmfd_frame* in = shmfd_request_frame(request);
    CHECK(in != NULL && shmfd_frame_in_pool(in) && shmfd_frame_data(in)[4095] == 30 + round);
    CHECK(in != NULL && mapped_read_only(shmfd_frame_data(in)));
    /* The server holds the caller's only slot. */
    CHECK(shmfd_caller_acquire(caller, requests, SHMFD_NONBLOCK, &slot) == SHMFD_E_NO_FREE_SLOT);
    shmfd_slot out;
    MUST(shmfd_server_acquire(server, responses, 0, &out));
    memset(out.data, 40 + round, out.size);
    MUST(shmfd_server_respond_slot(server, request, &out, &layout, 1));
    shmfd_request_free(request);
    shmfd_response* response = NULL;
    MUST(shmfd_caller_next(caller, call, 5000, &response));
    const shmfd_frame* f = shmfd_response_frame(response);
    CHECK(f != NULL && shmfd_frame_in_pool(f) && shmfd_frame_data(f)[0] == 40 + round);
    CHECK(shmfd_server_acquire(server, responses, SHMFD_NONBLOCK, &out) == SHMFD_E_NO_FREE_SLOT);
    shmfd_response_free(response);
  }
  /* shmfd_caller_call_slot waits for its response; a NULL slot is named. */
  shmfd_slot slot;
  MUST(shmfd_caller_acquire(caller, requests, 0, &slot));
  shmfd_response* response = NULL;
  CHECK(shmfd_caller_call_slot(caller, "c/pooled", NULL, &layout, 0, 0, &response) ==
        SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "slot") != NULL);
  MUST(shmfd_server_withdraw(server, "c/pooled"));
  CHECK(shmfd_caller_call_slot(caller, "c/pooled", &slot, &layout, 0, 0, &response) ==
        SHMFD_E_CALL_FAILED);
  CHECK(shmfd_last_call_error() == SHMFD_CALL_NO_SERVER);
  shmfd_server_close(server);
  shmfd_caller_close(caller);
}

/* A server child that locks itself down after offering "c/locked", then serves one call: the
 * lock leaves what serving takes. With SHMFD_SANDBOX_EPERM an open() fails with EPERM; with no
 * flag it kills the child with SIGSYS. */
static void locked_child(uint32_t flags) {
  shmfd_server* server = NULL;
  if (shmfd_server_connect(socket_path, "c-locked", 0, &server) != SHMFD_OK ||
      shmfd_server_offer(server, "c/locked", 1, NULL) != SHMFD_OK)
    _exit(10);
  const char* more[] = {"getppid"};
  if (shmfd_restrict_syscalls(more, 1, flags) != SHMFD_OK) _exit(11);
  if (getppid() <= 1) _exit(12); /* allowed by name */
  shmfd_request* request = NULL;
  if (shmfd_server_receive(server, -1, &request) != SHMFD_OK || request == NULL) _exit(13);
  const shmfd_frame* in = shmfd_request_frame(request);
  shmfd_buffer* out = NULL;
  if (in == NULL || shmfd_buffer_create(shmfd_frame_size(in), &out) != SHMFD_OK) _exit(14);
  for (size_t i = 0; i < shmfd_frame_size(in); ++i)
    shmfd_buffer_data(out)[i] = (uint8_t)~shmfd_frame_data(in)[i];
  shmfd_layout layout;
  shmfd_blob_layout(shmfd_frame_size(in), &layout);
  if (shmfd_server_respond(server, request, out, &layout, 1) != SHMFD_OK) _exit(15);
  shmfd_request_free(request);
  /* Outside the list: EPERM, or death. */
  const int fd = open("/dev/null", O_RDONLY);
  _exit(fd < 0 && errno == EPERM ? 0 : 16);
}

static void test_sandbox(void) {
  /* The list: what serving takes, nothing that reaches outside the process. */
  const char* list = shmfd_allowed_syscalls(0);
  CHECK(strstr(list, "recvmsg") != NULL && strstr(list, "futex") != NULL);
  CHECK(strstr(list, "openat") == NULL && strstr(list, "socket") == NULL &&
        strstr(list, "execve") == NULL && strstr(list, "clone") == NULL);
  CHECK(strstr(shmfd_allowed_syscalls(SHMFD_SANDBOX_THREADS), "clone3") != NULL);
  /* Refusals install nothing: this process opens files afterwards (the fd count below). */
  const char* unknown[] = {"recvmsg", "no_such_call"};
  CHECK(shmfd_restrict_syscalls(unknown, 2, 0) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(strstr(shmfd_last_error_message(), "'no_such_call'") != NULL);
  CHECK(shmfd_restrict_syscalls(NULL, 1, 0) == SHMFD_E_INVALID_ARGUMENT);
  CHECK(shmfd_restrict_syscalls(NULL, 0, SHMFD_SANDBOX_EPERM | SHMFD_SANDBOX_LOG) ==
        SHMFD_E_INVALID_ARGUMENT);
  CHECK(shmfd_restrict_syscalls(NULL, 0, 0x80) == SHMFD_E_INVALID_ARGUMENT);

  const uint32_t modes[] = {SHMFD_SANDBOX_EPERM, 0};
  for (int m = 0; m < 2; ++m) {
    fflush(NULL);
    const pid_t child = fork();
    if (child == 0) locked_child(modes[m]);
    CHECK(child > 0);
    shmfd_caller* caller = NULL;
    MUST(shmfd_caller_connect(socket_path, "c-locked-caller", 0, &caller));
    shmfd_buffer* buffer = NULL;
    MUST(shmfd_buffer_create(4096, &buffer));
    memset(shmfd_buffer_data(buffer), 0x0f, 4096);
    shmfd_layout layout;
    MUST(shmfd_blob_layout(4096, &layout));
    shmfd_response* response = NULL;
    /* The child may not have offered yet: wait in the broker for a server with room. */
    shmfd_status called = SHMFD_E_CALL_FAILED;
    for (int tries = 0; tries < 500 && called == SHMFD_E_CALL_FAILED; ++tries) {
      called =
          shmfd_caller_call(caller, "c/locked", buffer, &layout, 10000, SHMFD_CALL_WAIT, &response);
      if (called == SHMFD_E_CALL_FAILED && shmfd_last_call_error() == SHMFD_CALL_NO_SERVER) {
        usleep(20000);
        MUST(shmfd_buffer_create(4096, &buffer));
        memset(shmfd_buffer_data(buffer), 0x0f, 4096);
      } else {
        break;
      }
    }
    CHECK(called == SHMFD_OK);
    const shmfd_frame* f = response ? shmfd_response_frame(response) : NULL;
    CHECK(f != NULL && shmfd_frame_size(f) == 4096 && shmfd_frame_data(f)[0] == 0xf0);
    shmfd_response_free(response);
    shmfd_caller_close(caller);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    if (modes[m] == SHMFD_SANDBOX_EPERM) {
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    } else {
      CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !WIFSIGNALED(status))
      fprintf(stderr, "c_api_test: the locked child exited with %d\n", WEXITSTATUS(status));
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PATH/TO/shmfd-broker\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  start_broker(argv[1]);
  /* One connection first: what the first one sets up for good (the allocator's arenas, the
   * thread's error slot) is not a leak. */
  shmfd_consumer* warm;
  MUST(shmfd_consumer_connect(socket_path, "c-warm-up", 0, &warm));
  shmfd_consumer_close(warm);
  const int fds = count_fds();
  const int maps = count_memfd_maps();
  test_errors_before_any_broker();
  test_pool_frames();
  test_sealed_frames_and_poll();
  test_frame_meta(SHMFD_NO_CHANNELS);
  test_frame_meta(0);
  test_services();
  test_service_pools();
  test_sandbox();
  test_broker_loss();
  CHECK(count_fds() == fds);
  CHECK(count_memfd_maps() == maps);
  stop_broker();
  unlink(socket_path);
  rmdir(socket_dir);
  if (failures) {
    fprintf(stderr, "c_api_test: %d checks failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed (%d fds and %d memfd mappings before and after)\n", fds,
         maps);
  return 0;
}
