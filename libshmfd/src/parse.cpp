#include "shmfd/wire/parse.hpp"

#include <charconv>
#include <string>
#include <system_error>

namespace shmfd {

Result<std::uint64_t> parse_number(std::string_view what, std::string_view text, std::uint64_t min,
                                   std::uint64_t max, int base) {
  const auto complaint = [&](const char* is) {
    return std::string(what) + ": '" + std::string(text) + "' " + is + " from " +
           std::to_string(min) + " to " + std::to_string(max);
  };
  std::uint64_t n = 0;
  // from_chars takes digits only: no sign, no leading space, no 0x; it stops at the first
  // character that is not one, which must then be the end.
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n, base);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    return fail(
        Error(std::make_error_code(std::errc::invalid_argument), complaint("is not a number")));
  }
  if (ec == std::errc::result_out_of_range || n < min || n > max) {
    return fail(Error(std::make_error_code(std::errc::result_out_of_range),
                      complaint("is out of range: a number")));
  }
  return n;
}

}  // namespace shmfd
