// The elements of the gstshmfd plugin, and the enum types of their properties.
#pragma once

#include <gst/gst.h>

namespace shmfd::gst {

GType shmfdsink_get_type();
GType shmfdsrc_get_type();
GType guarantee_get_type();     // pool | sealed
GType backpressure_get_type();  // drop-oldest | block-producer

}  // namespace shmfd::gst
