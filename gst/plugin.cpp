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
                                        {static_cast<gint>(Backpressure::latest),
                                         "Always the newest frame (previews, inference)", "latest"},
                                        {0, nullptr, nullptr}};
    g_once_init_leave(&type, g_enum_register_static("GstShmfdBackpressure", values));
  }
  return type;
}

void install_connection_properties(GObjectClass* klass, guint socket_path_id, guint topic_id,
                                   guint reconnect_id, const char* topic_blurb,
                                   const char* reconnect_blurb) {
  g_object_class_install_property(
      klass, socket_path_id,
      g_param_spec_string("socket-path", "Socket path", "The broker's Unix socket",
                          default_socket_path().c_str(), kSetting));
  g_object_class_install_property(
      klass, topic_id, g_param_spec_string("topic", "Topic", topic_blurb, nullptr, kSetting));
  g_object_class_install_property(
      klass, reconnect_id,
      g_param_spec_boolean("reconnect", "Reconnect", reconnect_blurb, FALSE, kSetting));
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
