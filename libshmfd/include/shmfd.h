/** @file
 * The C API of shmfd: zero-copy frames between processes through shmfd-broker.
 *
 * A thin layer over the C++ client library (libshmfd), for C and for every language that
 * calls C. Link with -lshmfd-c (pkg-config: shmfd-c). Its ABI is stable within a major
 * version: the library is libshmfd-c.so.1, handles are opaque, and the structs below only
 * grow into their reserved space.
 *
 * A producer:
 *
 * @code
 * shmfd_producer* p;
 * if (shmfd_producer_connect(NULL, "camera", 0, &p) != SHMFD_OK) die(shmfd_last_error_message());
 * shmfd_producer_advertise(p, "cam0", SHMFD_LAYOUT_IMAGE, SHMFD_GUARANTEE_POOL);
 * shmfd_layout layout;
 * shmfd_image_layout(SHMFD_PIXEL_RGBA8, 1920, 1080, 1, &layout);
 * uint32_t pool;
 * shmfd_producer_create_pool(p, "cam0", shmfd_layout_extent(&layout), 4, 0, &pool);
 * for (;;) {
 *   shmfd_slot slot;
 *   shmfd_producer_acquire(p, pool, 0, &slot);      // waits for a free slot
 *   draw(slot.data, slot.size);
 *   shmfd_producer_publish_slot(p, "cam0", &slot, &layout, 0, NULL);
 * }
 * shmfd_producer_close(p);
 * @endcode
 *
 * A consumer:
 *
 * @code
 * shmfd_consumer* c;
 * shmfd_consumer_connect(NULL, "viewer", 0, &c);
 * shmfd_consumer_subscribe(c, "cam0", 0, SHMFD_DROP_OLDEST, NULL);
 * shmfd_event* ev;
 * while (shmfd_consumer_receive(c, -1, &ev) == SHMFD_OK) {
 *   const shmfd_frame* f = shmfd_event_frame(ev);
 *   if (f) use(shmfd_frame_data(f), shmfd_frame_layout(f));
 *   int end = shmfd_event_get_kind(ev) == SHMFD_EVENT_END_OF_STREAM;
 *   shmfd_event_free(ev);                             // releases the frame
 *   if (end) break;
 * }
 * shmfd_consumer_close(c);
 * @endcode
 *
 * Errors: every function that can fail returns an shmfd_status, SHMFD_OK (0) on success.
 * On failure the calling thread's last error holds the code and a message that names the
 * operation and what was wrong (shmfd_last_error_message()); no output parameter is written,
 * and nothing is leaked. A NULL handle or output pointer is SHMFD_E_INVALID_ARGUMENT.
 *
 * Enumerations are passed as int: a value none of the named constants has is refused with
 * SHMFD_E_INVALID_ARGUMENT or SHMFD_E_LAYOUT_UNKNOWN_FORMAT, never undefined behaviour.
 *
 * Threads: each handle (producer, consumer) is used by one thread at a time; different
 * handles may be used from different threads at once. An event may be freed on any thread,
 * also while another thread is inside a call on its consumer: the frame's release is queued
 * and sent by that consumer's next call, or at once if it is waiting in a receive.
 */
#ifndef SHMFD_H
#define SHMFD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The C API's version: 1 since libshmfd-c.so.1. Functions added within a major version say
 * "(Since libshmfd-c 1.N.)". */
#define SHMFD_C_API_VERSION 1

/* ---- Errors ------------------------------------------------------------------------------ */

/** What a call returned: SHMFD_OK, or why it failed (shmfd_last_error_message() says more).
 * The codes match the C++ library's shmfd::Errc. */
typedef enum shmfd_status {
  SHMFD_OK = 0,                         /**< success */
  SHMFD_E_NOT_MEMFD = 1,                /**< a received fd is not a memfd */
  SHMFD_E_MISSING_SEALS = 2,            /**< a received memfd lacks the seals its guarantee needs */
  SHMFD_E_BUFFER_TOO_SMALL = 3,         /**< a received memfd is smaller than its layout */
  SHMFD_E_NOT_READABLE = 4,             /**< a received fd cannot be mapped read-only */
  SHMFD_E_INVALID_SIZE = 5,             /**< a buffer of 0 bytes, or too large */
  SHMFD_E_HUGE_PAGES_UNAVAILABLE = 6,   /**< huge pages asked for and none free */
  SHMFD_E_TOO_MANY_FDS = 7,             /**< a message with more fds than it may carry */
  SHMFD_E_FDS_TRUNCATED = 8,            /**< the kernel cut a message's fds off */
  SHMFD_E_MESSAGE_TRUNCATED = 9,        /**< a message too long to receive */
  SHMFD_E_EMPTY_MESSAGE = 10,           /**< a message of 0 bytes */
  SHMFD_E_LAYOUT_UNKNOWN_FORMAT = 11,   /**< layout: a format or dtype no one has */
  SHMFD_E_LAYOUT_BAD_DIMENSIONS = 12,   /**< layout: no pixels, channels or rate; odd yuyv width */
  SHMFD_E_LAYOUT_PLANE_COUNT = 13,      /**< layout: not the plane count of its format */
  SHMFD_E_LAYOUT_STRIDE_TOO_SMALL = 14, /**< layout: a stride shorter than its row */
  SHMFD_E_LAYOUT_PLANE_TOO_SMALL = 15,  /**< layout: a plane that does not hold its rows */
  SHMFD_E_LAYOUT_PLANES_OVERLAP = 16,   /**< layout: two planes share bytes */
  SHMFD_E_LAYOUT_OVERFLOW = 17,         /**< layout: the size arithmetic overflows */
  SHMFD_E_LAYOUT_OUT_OF_BOUNDS = 18,    /**< layout: it describes bytes past its buffer */
  SHMFD_E_MALFORMED_MESSAGE = 19,       /**< a message that is not valid in the protocol */
  SHMFD_E_FD_INDEX_OUT_OF_RANGE = 20,   /**< a message names an fd it did not carry */
  SHMFD_E_INVALID_TOPIC_NAME = 21,      /**< 1 to 255 bytes of A-Z a-z 0-9 . _ - / : */
  /** The broker refused a request: shmfd_last_broker_error() says why. */
  SHMFD_E_BROKER_REFUSED = 22,
  SHMFD_E_PROTOCOL_VIOLATION = 23,    /**< the broker sent what the protocol does not allow here */
  SHMFD_E_DISCONNECTED = 24,          /**< the broker closed the connection */
  SHMFD_E_NO_FREE_SLOT = 25,          /**< every slot is held (acquire with SHMFD_NONBLOCK) */
  SHMFD_E_INVALID_ARGUMENT = 26,      /**< the caller's mistake: a NULL handle, an unknown pool */
  SHMFD_E_INVALID_CONFIGURATION = 27, /**< a bad option or configuration */
  SHMFD_E_LIMIT_EXCEEDED = 28,        /**< a configured limit was reached */
  SHMFD_E_INVALID_METADATA = 29,      /**< frame metadata that breaks a rule (since 1.2) */
  /** A call to a service failed: shmfd_last_call_error() says why (since 1.3). */
  SHMFD_E_CALL_FAILED = 30,
  /** An operating-system call failed: shmfd_last_error_errno() has its errno. */
  SHMFD_E_SYSTEM = 100,
  /** Memory ran out, or the C++ library threw where it should not have (a bug: please report). */
  SHMFD_E_INTERNAL = 101
} shmfd_status;

/** Why the broker refused (the code of its Error message, docs/PROTOCOL.md, "Errors"). */
typedef enum shmfd_broker_error {
  SHMFD_BROKER_PROTOCOL_VERSION = 0,
  SHMFD_BROKER_MALFORMED_MESSAGE = 1,
  SHMFD_BROKER_NOT_MEMFD = 2,
  SHMFD_BROKER_MISSING_SEALS = 3,
  SHMFD_BROKER_BUFFER_TOO_SMALL = 4,
  SHMFD_BROKER_INVALID_LAYOUT = 5,
  SHMFD_BROKER_LIMIT_EXCEEDED = 6,
  SHMFD_BROKER_UNKNOWN_TOPIC = 7,
  SHMFD_BROKER_PERMISSION_DENIED = 8,
  SHMFD_BROKER_INTERNAL = 9,
  SHMFD_BROKER_TOPIC_TAKEN = 10,
  SHMFD_BROKER_NOT_READABLE = 11,
  SHMFD_BROKER_INVALID_TOPIC_NAME = 12,
  SHMFD_BROKER_UNEXPECTED_MESSAGE = 13,
  SHMFD_BROKER_ALREADY_SUBSCRIBED = 14,
  SHMFD_BROKER_NOT_SUBSCRIBED = 15,
  SHMFD_BROKER_NOT_HELD = 16,
  SHMFD_BROKER_SLOT_BUSY = 17,
  SHMFD_BROKER_UNKNOWN_POOL = 18,
  SHMFD_BROKER_GUARANTEE_MISMATCH = 19,
  SHMFD_BROKER_WRONG_FD_COUNT = 20,
  SHMFD_BROKER_ALREADY_ADVERTISED = 21,
  SHMFD_BROKER_BAD_SEQUENCE = 22,
  SHMFD_BROKER_INVALID_METADATA = 23, /**< frame metadata that breaks a rule (since 1.2) */
  SHMFD_BROKER_INVALID_CALL = 24      /**< no such call, or a call id in use (since 1.3) */
} shmfd_broker_error;

/** The calling thread's last error: its code (SHMFD_OK if none yet), and its message, which
 * stays valid until the next failing call on this thread. */
shmfd_status shmfd_last_error(void);
/** The calling thread's last error message: the operation and what was wrong; "" if none. */
const char* shmfd_last_error_message(void);
/** The errno of the last SHMFD_E_SYSTEM error, else 0. */
int shmfd_last_error_errno(void);
/** The broker's code of the last SHMFD_E_BROKER_REFUSED error (an shmfd_broker_error), else -1. */
int shmfd_last_broker_error(void);
/** A constant name for a status (an shmfd_status): "SHMFD_E_DISCONNECTED". */
const char* shmfd_status_name(int status);

/** The default broker socket: $XDG_RUNTIME_DIR/shmfd/broker.sock, or /run/shmfd/broker.sock for
 * root. Every socket_path parameter takes NULL for it. Written to buf, NUL-terminated; returns
 * its length, or the size buf needs (as snprintf does). */
size_t shmfd_default_socket_path(char* buf, size_t size);

/* ---- Layouts: what a frame's bytes mean -------------------------------------------------- */

/** What a topic's frames hold: the member of shmfd_layout's union they use. */
typedef enum shmfd_layout_kind {
  SHMFD_LAYOUT_BLOB = 0,
  SHMFD_LAYOUT_IMAGE = 1,
  SHMFD_LAYOUT_AUDIO = 2,
  SHMFD_LAYOUT_TENSOR = 3
} shmfd_layout_kind;

/** Pixel formats of an image layout (shmfd_layout.format). */
typedef enum shmfd_pixel_format {
  SHMFD_PIXEL_RGBA8 = 0,
  SHMFD_PIXEL_BGRA8 = 1,
  SHMFD_PIXEL_RGB24 = 2,
  SHMFD_PIXEL_NV12 = 3, /**< 2 planes: Y, then interleaved UV at half resolution */
  SHMFD_PIXEL_I420 = 4, /**< 3 planes: Y, U, V (U and V at half resolution) */
  SHMFD_PIXEL_YUYV = 5, /**< 1 plane, 4:2:2 packed (Y0 U Y1 V); the width must be even */
  SHMFD_PIXEL_GRAY8 = 6,
  SHMFD_PIXEL_GRAY16 = 7 /**< little-endian */
} shmfd_pixel_format;

/** Audio sample formats (shmfd_layout.format), native-endian. */
typedef enum shmfd_sample_format {
  SHMFD_SAMPLE_U8 = 0,
  SHMFD_SAMPLE_S16 = 1,
  SHMFD_SAMPLE_S32 = 2,
  SHMFD_SAMPLE_F32 = 3,
  SHMFD_SAMPLE_F64 = 4
} shmfd_sample_format;

/** Tensor element types (shmfd_layout.format), native-endian; F16 is IEEE half, BF16 bfloat16. */
typedef enum shmfd_dtype {
  SHMFD_DTYPE_U8 = 0,
  SHMFD_DTYPE_I8 = 1,
  SHMFD_DTYPE_U16 = 2,
  SHMFD_DTYPE_I16 = 3,
  SHMFD_DTYPE_U32 = 4,
  SHMFD_DTYPE_I32 = 5,
  SHMFD_DTYPE_U64 = 6,
  SHMFD_DTYPE_I64 = 7,
  SHMFD_DTYPE_F16 = 8,
  SHMFD_DTYPE_BF16 = 9,
  SHMFD_DTYPE_F32 = 10,
  SHMFD_DTYPE_F64 = 11
} shmfd_dtype;

/** Planes an image layout can have. */
#define SHMFD_MAX_PLANES 4
/** Dimensions a tensor layout can have. */
#define SHMFD_MAX_TENSOR_RANK 8

/** One plane of an image: rows of `stride` bytes from `offset`. */
typedef struct shmfd_plane {
  uint64_t offset; /**< first byte of the plane in the frame */
  uint64_t stride; /**< bytes from one row to the next */
  uint64_t size;   /**< bytes the plane occupies */
} shmfd_plane;

/** A layout: `kind` says which member of the union holds. Offsets are from the start of the
 * frame's bytes (shmfd_frame_data, or a slot's data). Fill one with the shmfd_*_layout
 * functions, which compute planes and strides, or by hand: the library checks every layout
 * against the bytes it describes (shmfd_layout_check) before it goes anywhere. */
typedef struct shmfd_layout {
  uint32_t kind; /**< an shmfd_layout_kind */
  uint32_t
      format; /**< image: shmfd_pixel_format; audio: shmfd_sample_format; tensor: shmfd_dtype */
  union {
    struct {
      uint64_t offset;
      uint64_t size;
    } blob;
    struct {
      uint32_t width;
      uint32_t height;
      uint32_t plane_count;
      uint32_t reserved_;
      shmfd_plane planes[SHMFD_MAX_PLANES];
    } image;
    struct {
      uint32_t sample_rate;
      uint32_t channels;
      uint64_t frames; /**< samples per channel */
      uint32_t planar; /**< 1: one plane per channel; 0: interleaved */
      uint32_t reserved_;
      uint64_t offset;
      uint64_t plane_stride; /**< planar only: bytes from one channel's plane to the next */
    } audio;
    struct {
      uint64_t offset;
      uint32_t rank;
      uint32_t reserved_;
      uint64_t shape[SHMFD_MAX_TENSOR_RANK];
      uint64_t strides[SHMFD_MAX_TENSOR_RANK]; /**< in bytes */
    } tensor;
    uint64_t reserved_[32]; /**< room to grow without changing the struct's size */
  };
} shmfd_layout;

/** Standard layouts: format is an shmfd_pixel_format or shmfd_sample_format, dtype an
 * shmfd_dtype. row_alignment (a power of two; 1 packs tightly) pads each row and aligns
 * each plane. */
shmfd_status shmfd_image_layout(int format, uint32_t width, uint32_t height, uint32_t row_alignment,
                                shmfd_layout* out);
/** The layout of `frames` samples per channel, interleaved or `planar` (1). */
shmfd_status shmfd_audio_layout(int format, uint32_t sample_rate, uint32_t channels,
                                uint64_t frames, int planar, shmfd_layout* out);
/** Row-major (C order), densely packed; rank 1 to SHMFD_MAX_TENSOR_RANK. */
shmfd_status shmfd_tensor_layout(int dtype, uint32_t rank, const uint64_t* shape,
                                 shmfd_layout* out);
/** `size` opaque bytes from offset 0. */
shmfd_status shmfd_blob_layout(uint64_t size, shmfd_layout* out);
/** Checks every rule of `layout` and that what it describes fits in `buffer_size` bytes;
 * SHMFD_E_LAYOUT_* names the rule broken. */
shmfd_status shmfd_layout_check(const shmfd_layout* layout, uint64_t buffer_size);
/** One past the last byte `layout` describes: the least size of a buffer or slot for it
 * (0 if the layout is invalid; shmfd_layout_check says why). */
uint64_t shmfd_layout_extent(const shmfd_layout* layout);

/* ---- Producer ---------------------------------------------------------------------------- */

/** A producer's connection to the broker: opaque; shmfd_producer_connect() makes one. */
typedef struct shmfd_producer shmfd_producer;

/** What consumers of a topic may rely on, and so how its frames travel. */
typedef enum shmfd_guarantee {
  SHMFD_GUARANTEE_SEALED = 0, /**< each frame is its own sealed memfd: immutable once published */
  SHMFD_GUARANTEE_POOL = 1    /**< frames are slots of a pool, reused once every consumer let go */
} shmfd_guarantee;

/** Flags of shmfd_producer_connect and shmfd_consumer_connect. */
#define SHMFD_RECONNECT 0x1u /**< a lost broker is connected to again; the calls go on */
/** Consumer only: every frame comes through the broker's socket, so shmfd_consumer_fd() can be
 * polled. Without it, pool frames come on shared-memory channels that no fd signals (faster:
 * docs/PROTOCOL.md, section 14), and shmfd_consumer_fd() fails. */
#define SHMFD_POLLABLE 0x2u
/** Take pool frames through the broker even where channels are offered. */
#define SHMFD_NO_CHANNELS 0x4u

/** Connects to the broker (socket_path NULL: the default) and completes the handshake. */
shmfd_status shmfd_producer_connect(const char* socket_path, const char* client_name,
                                    uint32_t flags, shmfd_producer** out);
/** Disconnects and frees everything the producer holds. NULL is ignored. Its consumers get
 * SHMFD_EVENT_END_OF_STREAM. */
void shmfd_producer_close(shmfd_producer* producer);

/** Declares this client the producer of `topic`, whose frames all have layouts of `kind` (an
 * shmfd_layout_kind); guarantee is an shmfd_guarantee. */
shmfd_status shmfd_producer_advertise(shmfd_producer* producer, const char* topic, int kind,
                                      int guarantee);
/** Stops producing `topic` (its consumers get end of stream) without disconnecting. */
shmfd_status shmfd_producer_unadvertise(shmfd_producer* producer, const char* topic);

/** Pools: the fast path. */
#define SHMFD_POOL_HUGE_PAGES 0x1u /**< 2 MiB pages, or normal ones when too few are reserved */

/** A pool slot acquired for writing (shmfd_producer_acquire(), shmfd_caller_acquire(),
 * shmfd_server_acquire()): fill `data`, then publish or send it. */
typedef struct shmfd_slot {
  uint32_t pool;         /**< the pool's id, as shmfd_producer_create_pool() gave it */
  uint32_t index;        /**< the slot's number in the pool, from 0 */
  uint8_t* data;         /**< writable until published */
  size_t size;           /**< the slot's size: at least the slot_bytes asked for, in whole pages */
  uint64_t reserved_[2]; /**< room to grow; the library writes 0 */
} shmfd_slot;

/** Creates a pool of `slot_count` slots of at least `slot_bytes` each for `topic` (advertised
 * with SHMFD_GUARANTEE_POOL), sealed and registered with the broker. */
shmfd_status shmfd_producer_create_pool(shmfd_producer* producer, const char* topic,
                                        size_t slot_bytes, uint32_t slot_count, uint32_t flags,
                                        uint32_t* pool_out);
/** shmfd_producer_acquire(): fail with SHMFD_E_NO_FREE_SLOT instead of waiting. */
#define SHMFD_NONBLOCK 0x1u
/** A free slot to write into: waits until one is free, or with SHMFD_NONBLOCK fails with
 * SHMFD_E_NO_FREE_SLOT. A slot is free once every consumer released its last frame. */
shmfd_status shmfd_producer_acquire(shmfd_producer* producer, uint32_t pool, uint32_t flags,
                                    shmfd_slot* out);
/** Publishes an acquired slot with `layout` (offsets within the slot). timestamp_ns 0 means now
 * (CLOCK_MONOTONIC). sequence_out (may be NULL) gets the frame's sequence number. */
shmfd_status shmfd_producer_publish_slot(shmfd_producer* producer, const char* topic,
                                         const shmfd_slot* slot, const shmfd_layout* layout,
                                         uint64_t timestamp_ns, uint64_t* sequence_out);

/** Sealed frames: a buffer of their own, sealed when published, so no one can change it after. */
typedef struct shmfd_buffer shmfd_buffer;
/** A writable memfd of `size` bytes for `topic`. */
shmfd_status shmfd_producer_allocate(shmfd_producer* producer, const char* topic, size_t size,
                                     shmfd_buffer** out);
/** The buffer's bytes, writable until it is published. */
uint8_t* shmfd_buffer_data(shmfd_buffer* buffer);
/** The buffer's size in bytes, as allocated. */
size_t shmfd_buffer_size(const shmfd_buffer* buffer);
/** Frees a buffer that was not published. NULL is ignored. */
void shmfd_buffer_free(shmfd_buffer* buffer);
/** Seals `buffer` and publishes it. The buffer is consumed whatever the outcome: do not use or
 * free it after this call. */
shmfd_status shmfd_producer_publish_buffer(shmfd_producer* producer, const char* topic,
                                           shmfd_buffer* buffer, const shmfd_layout* layout,
                                           uint64_t timestamp_ns, uint64_t* sequence_out);

/** The broker checks frames after they are sent: a refusal (a layout too large for its buffer,
 * say) is returned by a later publish, or by this call, which returns SHMFD_OK when none is
 * pending and the oldest refusal otherwise (one per call). */
shmfd_status shmfd_producer_poll_error(shmfd_producer* producer);

/* ---- Consumer ---------------------------------------------------------------------------- */

/** A consumer's connection to the broker: opaque; shmfd_consumer_connect() makes one. */
typedef struct shmfd_consumer shmfd_consumer;
/** What shmfd_consumer_receive() gives: a frame, an end of stream or a reconnection. Opaque;
 * free it with shmfd_event_free(), which releases its frame. */
typedef struct shmfd_event shmfd_event;
/** A received frame: opaque, owned by its event. */
typedef struct shmfd_frame shmfd_frame;

/** What happens when a consumer falls behind. */
typedef enum shmfd_backpressure {
  SHMFD_DROP_OLDEST = 0,    /**< live media: a full queue drops its oldest frame for the new one */
  SHMFD_BLOCK_PRODUCER = 1, /**< no loss: the producer waits until this consumer has room */
  SHMFD_LATEST = 2          /**< previews, inference: always the newest frame (drop-oldest with
                               a depth of 1; the depth argument is then ignored) */
} shmfd_backpressure;

/** Connects to the broker (socket_path NULL: the default) and completes the handshake; flags
 * are SHMFD_RECONNECT, SHMFD_POLLABLE and SHMFD_NO_CHANNELS. */
shmfd_status shmfd_consumer_connect(const char* socket_path, const char* client_name,
                                    uint32_t flags, shmfd_consumer** out);
/** Frees the consumer and disconnects. Events not freed yet stay valid (their frames' pages
 * stay mapped), and the connection closes once the last of them is freed. NULL is ignored. */
void shmfd_consumer_close(shmfd_consumer* consumer);

/** Subscribes to `topic`: up to `depth` frames queued (0: the broker's default), with `policy`
 * (an shmfd_backpressure); depth_out (may be NULL) gets the depth granted. */
shmfd_status shmfd_consumer_subscribe(shmfd_consumer* consumer, const char* topic, uint32_t depth,
                                      int policy, uint32_t* depth_out);
/** Stops deliveries of `topic`. Events of it not freed yet stay valid. */
shmfd_status shmfd_consumer_unsubscribe(shmfd_consumer* consumer, const char* topic);

/** The next event. timeout_ms < 0 waits for one; 0 returns at once; > 0 waits at most that long.
 * *out is NULL when none came in time (SHMFD_OK still). SHMFD_E_DISCONNECTED: the broker is
 * gone (without SHMFD_RECONNECT). */
shmfd_status shmfd_consumer_receive(shmfd_consumer* consumer, int timeout_ms, shmfd_event** out);

/** The fd to poll for readability (consumers connected with SHMFD_POLLABLE only). Before each
 * poll, call shmfd_consumer_receive(consumer, 0, &ev) until it gives no event: events can wait
 * inside the library without the fd being readable (frames that came while subscribe waited
 * for its answer). The fd changes after an SHMFD_EVENT_RECONNECTED: take it again. */
shmfd_status shmfd_consumer_fd(const shmfd_consumer* consumer, int* fd_out);

/** Descriptors producers wrote on this consumer's channels that failed the checks: skipped. */
uint64_t shmfd_consumer_refusals(const shmfd_consumer* consumer);

/** What an event is. */
typedef enum shmfd_event_kind {
  SHMFD_EVENT_NONE = -1, /**< what shmfd_event_get_kind(NULL) returns */
  SHMFD_EVENT_FRAME = 0,
  SHMFD_EVENT_END_OF_STREAM = 1, /**< the topic's producer left or stopped */
  SHMFD_EVENT_RECONNECTED = 2    /**< the broker came back; every subscription is renewed */
} shmfd_event_kind;

/** What the event is; SHMFD_EVENT_NONE for NULL. */
shmfd_event_kind shmfd_event_get_kind(const shmfd_event* event);
/** The topic of a frame or an end of stream ("" for a reconnection). */
const char* shmfd_event_topic(const shmfd_event* event);
/** Why the stream ended (SHMFD_EVENT_END_OF_STREAM), else "". */
const char* shmfd_event_reason(const shmfd_event* event);
/** Frames of the event's topic this consumer missed in all, as shmfd_frame_dropped counts them:
 * for a frame, its shmfd_frame_dropped; for an end of stream, the count up to the end, which is
 * more than the last frame's if frames were lost after it; else 0. (Since libshmfd-c 1.1.) */
uint64_t shmfd_event_dropped(const shmfd_event* event);
/** The frame of an SHMFD_EVENT_FRAME, else NULL; it lives as long as the event. */
const shmfd_frame* shmfd_event_frame(const shmfd_event* event);
/** Releases the event's frame (its pool slot goes back to the producer) and frees it. NULL is
 * ignored. */
void shmfd_event_free(shmfd_event* event);

/** A frame's bytes: read-only, the producer's very pages (writing them faults: SIGSEGV). */
const uint8_t* shmfd_frame_data(const shmfd_frame* frame);
/** The frame's size in bytes: its buffer's, or its slot's. */
size_t shmfd_frame_size(const shmfd_frame* frame);
/** Its layout, checked against its bytes by this library before the frame was handed out. */
const shmfd_layout* shmfd_frame_layout(const shmfd_frame* frame);
/** The producer's number for the frame, from 1: a gap is frames this consumer did not get. */
uint64_t shmfd_frame_sequence(const shmfd_frame* frame);
uint64_t shmfd_frame_timestamp_ns(const shmfd_frame* frame); /**< CLOCK_MONOTONIC */
/** Frames of this topic this consumer missed so far (dropped for it, or lost in a reconnect). */
uint64_t shmfd_frame_dropped(const shmfd_frame* frame);
/** 1 if the frame is a slot of a pool, 0 if it is a sealed buffer of its own. */
int shmfd_frame_in_pool(const shmfd_frame* frame);

/* ---- Frame metadata (since libshmfd-c 1.2; protocol version 5) --------------------------- */

/** shmfd_frame_meta.fields: shmfd_frame_meta.pts holds a value. */
#define SHMFD_META_PTS 0x1u
#define SHMFD_META_DTS 0x2u      /**< shmfd_frame_meta.dts holds a value */
#define SHMFD_META_DURATION 0x4u /**< shmfd_frame_meta.duration holds a value */
#define SHMFD_META_CROP 0x8u     /**< the crop_* fields hold a rectangle */

/** shmfd_frame_meta.flags: the stream is not continuous before this frame (a seek, a reset). */
#define SHMFD_FRAME_DISCONTINUITY 0x1u
#define SHMFD_FRAME_CORRUPTED 0x2u  /**< the producer knows the contents are damaged */
#define SHMFD_FRAME_DELTA_UNIT 0x4u /**< not decodable on its own (not a keyframe) */
#define SHMFD_FRAME_GAP 0x8u        /**< stands for a gap: no real data, only its timing */
#define SHMFD_FRAME_MARKER 0x10u    /**< the end of a unit the media defines */

/** What a frame carries beside its bytes (shmfd/frame_meta.hpp has the rules): pts and dts in
 * nanoseconds of the stream's time (not a clock), a duration, flags, a crop rectangle of an
 * image, and a user header of at most the topic's max_header_bytes. Zero-initialize it, then
 * set what the frame has. */
typedef struct shmfd_frame_meta {
  uint32_t fields;       /**< SHMFD_META_* bits: which optional fields are set */
  uint32_t flags;        /**< SHMFD_FRAME_* bits; others are refused */
  uint64_t pts;          /**< with SHMFD_META_PTS */
  uint64_t dts;          /**< with SHMFD_META_DTS */
  uint64_t duration;     /**< with SHMFD_META_DURATION */
  uint32_t crop_x;       /**< with SHMFD_META_CROP: first column */
  uint32_t crop_y;       /**< first row */
  uint32_t crop_width;   /**< columns, at least 1 */
  uint32_t crop_height;  /**< rows, at least 1 */
  const uint8_t* header; /**< the user header (NULL when header_size is 0) */
  size_t header_size;    /**< its bytes */
  uint64_t reserved_[4]; /**< room to grow; write 0 */
} shmfd_frame_meta;

/** What a topic declares about its frames' metadata (shmfd_producer_advertise_options()). */
typedef struct shmfd_topic_options {
  uint32_t max_header_bytes;    /**< the largest user header, 0 to 4096 */
  uint32_t frame_rate_num;      /**< the nominal frame rate, num/den per second; 0/0: unknown */
  uint32_t frame_rate_den;      /**< see frame_rate_num */
  uint32_t timestamps_required; /**< 1: every frame carries a pts or a dts */
  const char* header_schema;    /**< what the header holds, for tools; NULL or "": unnamed */
  uint64_t reserved_[4];        /**< room to grow; write 0 */
} shmfd_topic_options;

/** shmfd_producer_advertise() with `options` (NULL: the defaults). SHMFD_E_INVALID_METADATA for
 * options that break a rule; SHMFD_E_INVALID_ARGUMENT from a broker older than version 5. */
shmfd_status shmfd_producer_advertise_options(shmfd_producer* producer, const char* topic, int kind,
                                              int guarantee, const shmfd_topic_options* options);
/** shmfd_producer_publish_slot() with `meta` (NULL: none). A frame whose metadata breaks a rule
 * is not sent: SHMFD_E_INVALID_METADATA, and the slot stays acquired. */
shmfd_status shmfd_producer_publish_slot_meta(shmfd_producer* producer, const char* topic,
                                              const shmfd_slot* slot, const shmfd_layout* layout,
                                              const shmfd_frame_meta* meta, uint64_t timestamp_ns,
                                              uint64_t* sequence_out);
/** shmfd_producer_publish_buffer() with `meta` (NULL: none). The buffer is consumed whatever
 * the outcome. */
shmfd_status shmfd_producer_publish_buffer_meta(shmfd_producer* producer, const char* topic,
                                                shmfd_buffer* buffer, const shmfd_layout* layout,
                                                const shmfd_frame_meta* meta, uint64_t timestamp_ns,
                                                uint64_t* sequence_out);
/** The frame's metadata into `out` (all zero when it carries none); out->header points into the
 * frame and lives as long as its event. */
void shmfd_frame_get_meta(const shmfd_frame* frame, shmfd_frame_meta* out);

/* ---- Services (since libshmfd-c 1.3; protocol version 6; docs/services.md) ---------------- */

/** Why a call failed (shmfd_last_call_error() after SHMFD_E_CALL_FAILED). */
typedef enum shmfd_call_error {
  SHMFD_CALL_NO_SERVER = 1,    /**< no client offers the service */
  SHMFD_CALL_BUSY = 2,         /**< every server (or this caller) at its bound of calls */
  SHMFD_CALL_DEADLINE = 3,     /**< the deadline passed; the server was told to drop the call */
  SHMFD_CALL_SERVER_GONE = 4,  /**< the server died or withdrew: call again, another takes it */
  SHMFD_CALL_SERVER_ERROR = 5, /**< the server answered with an error (the message has it) */
  SHMFD_CALL_CANCELLED = 6     /**< this caller cancelled the call */
} shmfd_call_error;

/** The shmfd_call_error of the last SHMFD_E_CALL_FAILED error, else 0. */
int shmfd_last_call_error(void);

/** A writable memfd of `size` bytes that belongs to no producer: a request or a response. */
shmfd_status shmfd_buffer_create(size_t size, shmfd_buffer** out);

/** A caller's connection to the broker: opaque; shmfd_caller_connect() makes one. */
typedef struct shmfd_caller shmfd_caller;
/** A response a caller received: opaque, with its frame (or none); free it with
 * shmfd_response_free(). */
typedef struct shmfd_response shmfd_response;

/** shmfd_caller_call() and shmfd_caller_start(): when every server is busy, wait in the broker
 * (until a server has room or the deadline passes) instead of failing with SHMFD_CALL_BUSY. */
#define SHMFD_CALL_WAIT 0x1u

/** Connects to the broker (socket_path NULL: the default) as a caller; flags is
 * SHMFD_RECONNECT or 0. A broker older than protocol 6 is SHMFD_E_BROKER_REFUSED
 * (SHMFD_BROKER_PROTOCOL_VERSION). */
shmfd_status shmfd_caller_connect(const char* socket_path, const char* client_name, uint32_t flags,
                                  shmfd_caller** out);
/** Disconnects: the servers of its calls in flight get a cancel. Responses not freed yet stay
 * valid. NULL is ignored. */
void shmfd_caller_close(shmfd_caller* caller);
/** Calls `service` with `buffer` (sealed here; NULL: a request of no bytes, and `layout` is
 * ignored) and waits for its response. The buffer is consumed whatever the outcome.
 * deadline_ms 0: the broker's longest. A stream's first response only: the call is then
 * cancelled (use shmfd_caller_start() for streams). */
shmfd_status shmfd_caller_call(shmfd_caller* caller, const char* service, shmfd_buffer* buffer,
                               const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                               shmfd_response** out);
/** Starts a call without waiting; call_out gets its number for shmfd_caller_next(). */
shmfd_status shmfd_caller_start(shmfd_caller* caller, const char* service, shmfd_buffer* buffer,
                                const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                                uint64_t* call_out);
/** The next response of `call`: timeout_ms < 0 waits for it, 0 returns at once, > 0 waits at
 * most that long (*out NULL when none came, SHMFD_OK still). After its last response (or its
 * failure) the call is over. */
shmfd_status shmfd_caller_next(shmfd_caller* caller, uint64_t call, int timeout_ms,
                               shmfd_response** out);
/** Gives up `call`: its server is told, and what was on its way is dropped. */
shmfd_status shmfd_caller_cancel(shmfd_caller* caller, uint64_t call);
/** Creates a pool for requests: `slot_count` slots of at least `slot_bytes` each (whole pages),
 * registered and verified once; flags is SHMFD_POOL_HUGE_PAGES or 0. Requests in its slots
 * carry no fd and no fresh memory (docs/services.md, "Frames in pool slots"). */
shmfd_status shmfd_caller_create_pool(shmfd_caller* caller, size_t slot_bytes, uint32_t slot_count,
                                      uint32_t flags, uint32_t* pool_out);
/** A free slot of `pool` to write a request into: waits until one is free, or with
 * SHMFD_NONBLOCK fails with SHMFD_E_NO_FREE_SLOT. A slot sent in a call is free again once its
 * server has freed the request (shmfd_request_free()), or the broker did not take it. */
shmfd_status shmfd_caller_acquire(shmfd_caller* caller, uint32_t pool, uint32_t flags,
                                  shmfd_slot* out);
/** shmfd_caller_call() with an acquired slot (`layout`'s offsets within the slot) instead of a
 * buffer. The slot is not the caller's to write again until acquired again. */
shmfd_status shmfd_caller_call_slot(shmfd_caller* caller, const char* service,
                                    const shmfd_slot* slot, const shmfd_layout* layout,
                                    uint32_t deadline_ms, uint32_t flags, shmfd_response** out);
/** shmfd_caller_start() with an acquired slot. */
shmfd_status shmfd_caller_start_slot(shmfd_caller* caller, const char* service,
                                     const shmfd_slot* slot, const shmfd_layout* layout,
                                     uint32_t deadline_ms, uint32_t flags, uint64_t* call_out);
/** The response's frame, or NULL for a response of no bytes; it lives as long as the response. */
const shmfd_frame* shmfd_response_frame(const shmfd_response* response);
/** 1 if no more responses come for the call, else 0. */
int shmfd_response_last(const shmfd_response* response);
/** Unmaps the response's frame and frees it. NULL is ignored. */
void shmfd_response_free(shmfd_response* response);

/** A server's connection to the broker: opaque; shmfd_server_connect() makes one. */
typedef struct shmfd_server shmfd_server;
/** What shmfd_server_receive() gives: a request (with its frame, or none) or a cancel. Opaque;
 * free it with shmfd_request_free(). */
typedef struct shmfd_request shmfd_request;

/** Connects to the broker as a server; flags is SHMFD_RECONNECT (services are offered again
 * after a broker restart) or 0. */
shmfd_status shmfd_server_connect(const char* socket_path, const char* client_name, uint32_t flags,
                                  shmfd_server** out);
/** Disconnects: the callers of its calls in flight get SHMFD_CALL_SERVER_GONE. NULL is
 * ignored. */
void shmfd_server_close(shmfd_server* server);
/** Offers `service`, taking at most `max_in_flight` of its calls at once (0: the broker's
 * default); granted_out (may be NULL) gets the bound granted. */
shmfd_status shmfd_server_offer(shmfd_server* server, const char* service, uint32_t max_in_flight,
                                uint32_t* granted_out);
/** Stops offering `service`: its calls in flight fail with SHMFD_CALL_SERVER_GONE. */
shmfd_status shmfd_server_withdraw(shmfd_server* server, const char* service);
/** The next request or cancel: timeout_ms as for shmfd_caller_next(). */
shmfd_status shmfd_server_receive(shmfd_server* server, int timeout_ms, shmfd_request** out);
/** Answers `request` with `buffer` (sealed here; NULL: a response of no bytes). `last` 0 sends
 * one response of a stream, which a response with `last` 1 ends. The buffer is consumed
 * whatever the outcome. A refusal by the broker is returned by a later respond. */
shmfd_status shmfd_server_respond(shmfd_server* server, const shmfd_request* request,
                                  shmfd_buffer* buffer, const shmfd_layout* layout, int last);
/** Ends `request` with an error: its caller gets SHMFD_CALL_SERVER_ERROR with `message`. */
shmfd_status shmfd_server_respond_error(shmfd_server* server, const shmfd_request* request,
                                        const char* message);
/** Creates a pool for responses, as shmfd_caller_create_pool() does for requests. */
shmfd_status shmfd_server_create_pool(shmfd_server* server, size_t slot_bytes, uint32_t slot_count,
                                      uint32_t flags, uint32_t* pool_out);
/** A free slot of `pool` to write a response into, as shmfd_caller_acquire(): free again once
 * its caller has freed the response (shmfd_response_free()). */
shmfd_status shmfd_server_acquire(shmfd_server* server, uint32_t pool, uint32_t flags,
                                  shmfd_slot* out);
/** shmfd_server_respond() with an acquired slot instead of a buffer. */
shmfd_status shmfd_server_respond_slot(shmfd_server* server, const shmfd_request* request,
                                       const shmfd_slot* slot, const shmfd_layout* layout,
                                       int last);
/** 0 for a request; for a cancel, 1 + why (0 the caller left, 1 its deadline passed, 2 it
 * cancelled): the call of shmfd_request_id() is over, and answering it is wasted. */
int shmfd_request_cancel_reason(const shmfd_request* request);
/** The broker's number for the call (the same in its cancel). */
uint64_t shmfd_request_id(const shmfd_request* request);
/** The service called ("" for a cancel). */
const char* shmfd_request_service(const shmfd_request* request);
/** The request's frame, or NULL (a request of no bytes, or a cancel); it lives as long as the
 * request. */
const shmfd_frame* shmfd_request_frame(const shmfd_request* request);
/** Unmaps the request's frame and frees it. NULL is ignored. */
void shmfd_request_free(shmfd_request* request);

/* ---- A system-call allow list (since libshmfd-c 1.3; docs/sandboxing.md) ------------------ */

/** shmfd_restrict_syscalls(): starting threads stays allowed after the lock. */
#define SHMFD_SANDBOX_THREADS 0x1u
/** shmfd_restrict_syscalls(): a call outside the list fails with EPERM (without it, the kernel
 * kills the process with SIGSYS). */
#define SHMFD_SANDBOX_EPERM 0x2u
/** shmfd_restrict_syscalls(): a call outside the list is allowed and logged by the kernel (to
 * find what a program needs). Excludes SHMFD_SANDBOX_EPERM. */
#define SHMFD_SANDBOX_LOG 0x4u

/** Locks this process, for good, to the system calls a shmfd client makes in steady state (see
 * shmfd_allowed_syscalls()) and the `allow_count` names of `allow` ("openat", ...; NULL when 0):
 * sets no_new_privs, then installs a seccomp filter on every thread. Call it after set-up
 * (connect, offer, subscribe, pools). A name this machine does not know is
 * SHMFD_E_INVALID_ARGUMENT, and nothing is installed. */
shmfd_status shmfd_restrict_syscalls(const char* const* allow, size_t allow_count, uint32_t flags);
/** The names shmfd_restrict_syscalls() allows with `flags` and nothing in `allow`, sorted and
 * separated by spaces: static, never freed. A sanitizer build adds its runtime's calls. */
const char* shmfd_allowed_syscalls(uint32_t flags);

#ifdef __cplusplus
}
#endif

#endif /* SHMFD_H */
