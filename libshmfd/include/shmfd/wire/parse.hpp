// Strict parsing of unsigned numbers given on a command line or in a file: what the broker,
// shmfdctl and the examples use for every numeric option, so that "-1", "4294967297", "12abc"
// or "" never turn into a huge or wrapped value.
#pragma once

#include <cstdint>
#include <string_view>

#include "shmfd/error.hpp"

namespace shmfd {

// `text` as a number from `min` to `max`: digits of `base` only (no sign, space or suffix).
// The error (std::errc::invalid_argument or result_out_of_range) names `what` (the option,
// e.g. "--width"), the text and the range: "--width: '-1' is not a number from 1 to 16384".
Result<std::uint64_t> parse_number(std::string_view what, std::string_view text, std::uint64_t min,
                                   std::uint64_t max, int base = 10);

}  // namespace shmfd
