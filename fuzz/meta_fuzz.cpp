// libFuzzer target: arbitrary frame metadata and topic options against arbitrary layouts.
// Whenever check_frame_meta accepts, what a consumer may rely on holds, checked here
// independently: the crop lies inside an image (in 64-bit arithmetic), the header fits the
// topic, every flag is known, no time is the wire's "none", timestamps are there when required;
// and the metadata survives the wire unchanged. Options check_topic_options accepts survive
// the wire too.
#include <fuzzer/FuzzedDataProvider.h>

#include <capnp/message.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "shmfd/wire/wire.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "meta_fuzz: %s\n", what);
  std::abort();
}

std::optional<std::uint64_t> maybe_time(FuzzedDataProvider& in) {
  if (!in.ConsumeBool()) return std::nullopt;
  // The edges often: 0, and all ones (the wire's "none", which a frame may not carry).
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return 0;
    case 1:
      return ~std::uint64_t{0};
    default:
      return in.ConsumeIntegral<std::uint64_t>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  shmfd::TopicOptions topic;
  topic.max_header_bytes = in.ConsumeIntegralInRange<std::uint32_t>(0, 5000);
  topic.header_schema = in.ConsumeRandomLengthString(300);
  topic.frame_rate = {in.ConsumeIntegral<std::uint32_t>(),
                      in.ConsumeIntegralInRange<std::uint32_t>(0, 3)};
  topic.timestamps_required = in.ConsumeBool();

  shmfd::Layout layout = shmfd::blob_layout(in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 20));
  if (in.ConsumeBool()) {
    shmfd::ImageLayout image;
    image.width = in.ConsumeIntegral<std::uint32_t>();
    image.height = in.ConsumeIntegral<std::uint32_t>();
    layout = image;
  }

  shmfd::FrameMeta meta;
  meta.pts = maybe_time(in);
  meta.dts = maybe_time(in);
  meta.duration = maybe_time(in);
  meta.flags = in.ConsumeBool() ? in.ConsumeIntegral<std::uint32_t>()
                                : in.ConsumeIntegralInRange<std::uint32_t>(0, 0x1f);
  if (in.ConsumeBool()) {
    meta.crop =
        shmfd::Crop{in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>(),
                    in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>()};
  }
  const std::vector<std::uint8_t> header =
      in.ConsumeBytes<std::uint8_t>(in.ConsumeIntegralInRange<std::size_t>(0, 5000));
  meta.header = std::as_bytes(std::span(header));

  if (shmfd::check_topic_options(topic)) {
    capnp::MallocMessageBuilder message;
    auto builder = message.initRoot<shmfd::proto::TopicOptions>();
    shmfd::topic_options_to_proto(topic, builder);
    if (shmfd::topic_options_from_proto(builder.asReader()) != topic) {
      violated("accepted topic options changed on the wire");
    }
    if (topic.max_header_bytes > shmfd::kMaxUserHeaderBytes) violated("a header limit over 4 KiB");
  }

  if (!shmfd::check_frame_meta(meta, topic, layout)) return 0;
  // Accepted: what a consumer relies on.
  if ((meta.flags & ~shmfd::kKnownFrameFlags) != 0) violated("an unknown flag accepted");
  if (meta.header.size() > topic.max_header_bytes) violated("a header over the topic's limit");
  for (const auto* t : {&meta.pts, &meta.dts, &meta.duration}) {
    if (*t && **t == ~std::uint64_t{0}) violated("a time of all ones accepted");
  }
  if (topic.timestamps_required && !meta.pts && !meta.dts) violated("no timestamp accepted");
  if (meta.crop) {
    const auto* image = std::get_if<shmfd::ImageLayout>(&layout);
    if (image == nullptr) violated("a crop on a frame that is not an image");
    const shmfd::Crop& c = *meta.crop;
    if (c.width == 0 || c.height == 0) violated("an empty crop accepted");
    if (std::uint64_t{c.x} + c.width > image->width ||
        std::uint64_t{c.y} + c.height > image->height) {
      violated("a crop outside the image accepted");
    }
  }
  // And the wire keeps it.
  capnp::MallocMessageBuilder message;
  auto builder = message.initRoot<shmfd::proto::FrameMeta>();
  shmfd::meta_to_proto(meta, builder);
  const shmfd::FrameMeta back = shmfd::meta_from_proto(builder.asReader());
  if (back.pts != meta.pts || back.dts != meta.dts || back.duration != meta.duration ||
      back.flags != meta.flags || back.crop != meta.crop ||
      !std::equal(back.header.begin(), back.header.end(), meta.header.begin(), meta.header.end())) {
    violated("accepted metadata changed on the wire");
  }
  return 0;
}
