// shmfd-plugin-runner: hosts one plugin in a process of its own. Started by shmfd-plugin-host
// with a connected socket as fd 3; loads the plugin, then for each frame: verify, map
// read-only, let the plugin fill a fresh memfd, seal it, send it back.
//
//   shmfd-plugin-runner PLUGIN.so
#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "../common/frame_link.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd_plugin.h"

int main(int argc, char** argv) {
  using namespace shmfd;
  constexpr int kSocket = 3;
  if (argc != 2) return std::fprintf(stderr, "usage: shmfd-plugin-runner PLUGIN.so\n"), 2;
  void* lib = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return std::fprintf(stderr, "shmfd-plugin-runner: %s\n", ::dlerror()), 1;
  using Entry = const shmfd_plugin* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(lib, "shmfd_plugin_entry"));
  const shmfd_plugin* plugin = entry != nullptr ? entry() : nullptr;
  if (plugin == nullptr || plugin->abi_version != SHMFD_PLUGIN_ABI_VERSION ||
      plugin->process == nullptr) {
    std::fprintf(stderr, "shmfd-plugin-runner: %s is not a shmfd plugin of ABI version %d\n",
                 argv[1], SHMFD_PLUGIN_ABI_VERSION);
    return 1;
  }

  return examples::serve_rgba_frames(
      kSocket,
      [&](const examples::LinkFrame& frame, const ImageLayout& image,
          std::span<const std::byte> bytes) -> Result<examples::LinkReply> {
        auto out =
            WritableBuffer::create(std::string("plugin/") + plugin->name, image.planes[0].size);
        if (!out) return fail(std::move(out.error()));
        const auto stride = static_cast<std::uint32_t>(image.planes[0].stride);
        const shmfd_plugin_input in{
            reinterpret_cast<const std::uint8_t*>(bytes.data() + image.planes[0].offset),
            image.width, image.height, stride, frame.sequence};
        shmfd_plugin_output result{reinterpret_cast<std::uint8_t*>(out->bytes().data()),
                                   image.width, image.height, stride};
        if (plugin->process(&in, &result) != 0) {
          return fail(Errc::invalid_argument, std::string(plugin->name) + " rejected frame " +
                                                  std::to_string(frame.sequence));
        }
        auto sealed = std::move(*out).seal();
        if (!sealed) return fail(std::move(sealed.error()));
        return examples::LinkReply{std::move(*sealed),
                                   *image_layout(PixelFormat::rgba8, image.width, image.height)};
      });
}
