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

  MessageBuffer buffer;
  for (;;) {
    auto event = examples::receive_link(kSocket, buffer);
    if (!event) {
      (void)examples::send_link_text(kSocket, "refused input: " + event.error().message());
      continue;
    }
    if (std::holds_alternative<examples::LinkClosed>(*event)) return 0;
    auto* frame = std::get_if<examples::LinkFrame>(&*event);
    const auto* image = frame ? std::get_if<ImageLayout>(&frame->layout) : nullptr;
    if (image == nullptr || image->format != PixelFormat::rgba8) {
      (void)examples::send_link_text(kSocket, "refused input: not an rgba8 image");
      continue;
    }
    auto view =
        Mapping::map(frame->fd.get(), static_cast<std::size_t>(frame->size), Access::read_only);
    auto out = WritableBuffer::create(std::string("plugin/") + plugin->name, image->planes[0].size);
    if (!view || !out) {
      (void)examples::send_link_text(kSocket,
                                     !view ? view.error().message() : out.error().message());
      continue;
    }
    const auto stride = static_cast<std::uint32_t>(image->planes[0].stride);
    const shmfd_plugin_input in{
        reinterpret_cast<const std::uint8_t*>(view->bytes().data() + image->planes[0].offset),
        image->width, image->height, stride, frame->sequence};
    shmfd_plugin_output result{reinterpret_cast<std::uint8_t*>(out->bytes().data()), image->width,
                               image->height, stride};
    if (plugin->process(&in, &result) != 0) {
      (void)examples::send_link_text(kSocket, std::string(plugin->name) + " rejected frame " +
                                                  std::to_string(frame->sequence));
      continue;
    }
    auto sealed = std::move(*out).seal();
    auto out_layout = image_layout(PixelFormat::rgba8, image->width, image->height);
    if (!sealed || !examples::send_link_frame(kSocket, sealed->fd(), *out_layout, frame->sequence))
      return 1;
  }
}
