// The gstshmfd plugin: shmfdsink and shmfdsrc.
#include <gst/gst.h>

#include "elements.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd::gst {

GType guarantee_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {static_cast<gint>(Guarantee::pool), "Slots of a shared pool, written in place", "pool"},
        {static_cast<gint>(Guarantee::sealed), "A memfd per frame, sealed against writes",
         "sealed"},
        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstShmfdGuarantee", values));
  }
  return type;
}

GType backpressure_get_type() {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {{static_cast<gint>(Backpressure::drop_oldest),
                                         "Drop the oldest waiting frame", "drop-oldest"},
                                        {static_cast<gint>(Backpressure::block_producer),
                                         "Make the producer wait", "block-producer"},
                                        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstShmfdBackpressure", values));
  }
  return type;
}

namespace {

gboolean plugin_init(GstPlugin* plugin) {
  return gst_element_register(plugin, "shmfdsink", GST_RANK_NONE, shmfdsink_get_type()) &&
         gst_element_register(plugin, "shmfdsrc", GST_RANK_NONE, shmfdsrc_get_type());
}

}  // namespace
}  // namespace shmfd::gst

#define PACKAGE "shmfd"
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, shmfd,
                  "shmfd: verified zero-copy shared memory between processes",
                  shmfd::gst::plugin_init, SHMFD_VERSION,
                  GST_LICENSE_UNKNOWN,  // the project has not chosen its licence yet
                  "shmfd", "shmfd")
