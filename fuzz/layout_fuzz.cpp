// libFuzzer target: arbitrary layouts against arbitrary buffer sizes. Whenever
// validate_layout accepts, every byte a consumer may touch (computed here independently, in
// 128-bit arithmetic) lies inside the buffer, and the layout survives the wire unchanged.
// This is the property that keeps consumers safe from SIGBUS and out-of-bounds reads.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "shmfd/wire/wire.hpp"

namespace {

using u128 = unsigned __int128;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "layout_fuzz: %s\n", what);
  std::abort();
}

shmfd::Layout make_layout(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return shmfd::BlobLayout{in.ConsumeIntegral<std::uint64_t>(),
                               in.ConsumeIntegral<std::uint64_t>()};
    case 1: {
      shmfd::ImageLayout l;
      l.format = static_cast<shmfd::PixelFormat>(in.ConsumeIntegralInRange<int>(0, 8));
      l.width = in.ConsumeIntegral<std::uint32_t>();
      l.height = in.ConsumeIntegral<std::uint32_t>();
      l.plane_count = in.ConsumeIntegralInRange<std::uint32_t>(0, shmfd::kMaxPlanes);
      for (auto& p : l.planes) {
        p = {in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint64_t>(),
             in.ConsumeIntegral<std::uint64_t>()};
      }
      return l;
    }
    case 2: {
      shmfd::AudioLayout l;
      l.format = static_cast<shmfd::SampleFormat>(in.ConsumeIntegralInRange<int>(0, 5));
      l.sample_rate = in.ConsumeIntegral<std::uint32_t>();
      l.channels = in.ConsumeIntegral<std::uint32_t>();
      l.frames = in.ConsumeIntegral<std::uint64_t>();
      l.planar = in.ConsumeBool();
      l.offset = in.ConsumeIntegral<std::uint64_t>();
      l.plane_stride = in.ConsumeIntegral<std::uint64_t>();
      return l;
    }
    default: {
      shmfd::TensorLayout l;
      l.dtype = static_cast<shmfd::DType>(in.ConsumeIntegralInRange<int>(0, 12));
      l.offset = in.ConsumeIntegral<std::uint64_t>();
      l.rank = in.ConsumeIntegralInRange<std::uint32_t>(0, shmfd::kMaxTensorRank + 1);
      for (std::size_t i = 0; i < shmfd::kMaxTensorRank; ++i) {
        l.shape[i] = in.ConsumeIntegral<std::uint64_t>();
        l.strides[i] = in.ConsumeIntegral<std::uint64_t>();
      }
      return l;
    }
  }
}

// One past the last byte a consumer of `layout` may read.
u128 reach(const shmfd::Layout& layout) {
  if (const auto* b = std::get_if<shmfd::BlobLayout>(&layout)) return u128{b->offset} + b->size;
  if (const auto* im = std::get_if<shmfd::ImageLayout>(&layout)) {
    u128 end = 0;
    for (const auto& p : im->used_planes()) end = std::max(end, u128{p.offset} + p.size);
    return end;
  }
  if (const auto* a = std::get_if<shmfd::AudioLayout>(&layout)) {
    const u128 sample = shmfd::bytes_per_sample(a->format);
    if (a->planar) {
      return u128{a->offset} + u128{a->channels - 1} * a->plane_stride + u128{a->frames} * sample;
    }
    return u128{a->offset} + u128{a->frames} * a->channels * sample;
  }
  const auto& t = std::get<shmfd::TensorLayout>(layout);
  u128 last = t.offset;
  for (std::uint32_t i = 0; i < t.rank; ++i) {
    if (t.shape[i] == 0) return t.offset;  // no elements
    last += u128{t.shape[i] - 1} * t.strides[i];
  }
  return last + shmfd::dtype_size(t.dtype);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::uint64_t buffer = in.ConsumeIntegral<std::uint64_t>();
  const shmfd::Layout layout = make_layout(in);
  auto valid = shmfd::validate_layout(layout, buffer);
  if (!valid) {
    if (valid.error().message().empty()) violated("a refusal without a message");
    return 0;
  }
  if (*valid > buffer) violated("extent larger than the buffer");
  if (reach(layout) > buffer) violated("a consumer could read past the buffer");
  // Through the wire and back: the very same layout.
  capnp::MallocMessageBuilder builder;
  shmfd::layout_to_proto(layout, builder.initRoot<shmfd::proto::Layout>());
  auto back = shmfd::layout_from_proto(builder.getRoot<shmfd::proto::Layout>().asReader());
  if (!back) violated("a valid layout did not survive the wire");
  auto again = shmfd::validate_layout(*back, buffer);
  if (!again || *again != *valid) violated("the layout changed on the wire");
  return 0;
}
