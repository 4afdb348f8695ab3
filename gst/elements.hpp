// The elements of the gstshmfd plugin, and the enum types of their properties.
#pragma once

#include <gst/gst.h>

namespace shmfd::gst {

GType shmfdsink_get_type();
GType shmfdsrc_get_type();
GType guarantee_get_type();     // pool | sealed
GType backpressure_get_type();  // drop-oldest | block-producer

// Settings (changeable in NULL and READY), and read-only statistics.
inline constexpr auto kSetting =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
inline constexpr auto kStatistic =
    static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

// socket-path, topic and reconnect, which both elements have, under the given property ids.
void install_connection_properties(GObjectClass* klass, guint socket_path_id, guint topic_id,
                                   guint reconnect_id, const char* topic_blurb,
                                   const char* reconnect_blurb);

}  // namespace shmfd::gst
