# Buffer layouts: what the bytes of a shared buffer mean. Offsets, strides and sizes are in
# bytes from the start of the buffer (or of the pool slot) they describe. A receiver never
# trusts them: libshmfd validates every layout against the real buffer size (layout.hpp).
@0xe3a17a226f60acb4;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shmfd::proto");

struct Layout {
  union {
    blob @0 :BlobLayout;
    image @1 :ImageLayout;
    audio @2 :AudioLayout;
    tensor @3 :TensorLayout;
  }
}

# Opaque bytes.
struct BlobLayout {
  offset @0 :UInt64;
  size @1 :UInt64;
}

enum PixelFormat {
  rgba8 @0;   # R G B A, 4 bytes per pixel
  bgra8 @1;   # B G R A, 4 bytes per pixel
  rgb24 @2;   # R G B, 3 bytes per pixel
  nv12 @3;    # Y plane, then interleaved UV at half resolution in both directions
  i420 @4;    # Y, U, V planes; U and V at half resolution in both directions
  yuyv @5;    # packed Y0 U Y1 V, 4 bytes per 2 pixels (even width)
  gray8 @6;   # 1 byte per pixel
  gray16 @7;  # 2 bytes per pixel, native endian
}

struct Plane {
  offset @0 :UInt64;  # first byte of the plane
  stride @1 :UInt64;  # bytes from one row to the next (>= the bytes of one row)
  size @2 :UInt64;    # bytes the plane occupies
}

struct ImageLayout {
  format @0 :PixelFormat;
  width @1 :UInt32;
  height @2 :UInt32;
  planes @3 :List(Plane);  # exactly as many as the format has (1 to 4)
}

enum SampleFormat {
  u8 @0;
  s16 @1;
  s32 @2;
  f32 @3;
  f64 @4;
}

struct AudioLayout {
  format @0 :SampleFormat;
  sampleRate @1 :UInt32;
  channels @2 :UInt32;
  frames @3 :UInt64;       # samples per channel
  planar @4 :Bool;         # one plane per channel; otherwise interleaved
  offset @5 :UInt64;
  planeStride @6 :UInt64;  # planar: bytes from one channel's plane to the next
}

enum DType {
  u8 @0; i8 @1; u16 @2; i16 @3; u32 @4; i32 @5; u64 @6; i64 @7;
  f16 @8; bf16 @9; f32 @10; f64 @11;
}

struct TensorLayout {
  dtype @0 :DType;
  offset @1 :UInt64;
  shape @2 :List(UInt64);    # at most 8 dimensions
  strides @3 :List(UInt64);  # in bytes, one per dimension
}
