// Strict number parsing (shmfd/wire/parse.hpp), and the programs that take numbers refusing what
// used to wrap: shmfd-pub --width -1 allocated a 7.9 TB memfd.
#include <gtest/gtest.h>

#include "shmfd/wire/parse.hpp"
#include "support/program.hpp"

namespace shmfd {
namespace {

TEST(ParseNumberTest, AcceptsDigitsWithinTheRange) {
  EXPECT_EQ(parse_number("--n", "0", 0, 10).value(), 0U);
  EXPECT_EQ(parse_number("--n", "10", 0, 10).value(), 10U);
  EXPECT_EQ(parse_number("--n", "18446744073709551615", 0, ~std::uint64_t{0}).value(),
            ~std::uint64_t{0});
  EXPECT_EQ(parse_number("--mode", "0660", 0, 0777, 8).value(), 0660U);
}

TEST(ParseNumberTest, RefusesAnythingElseNamingTheOptionAndRange) {
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "12abc", "0x10", "1e3", "1.5"}) {
    auto n = parse_number("--width", bad, 1, 16384);
    ASSERT_FALSE(n) << "'" << bad << "'";
    EXPECT_TRUE(n.error().is(std::errc::invalid_argument)) << bad;
    EXPECT_EQ(n.error().message(),
              std::string("--width: '") + bad + "' is not a number from 1 to 16384");
  }
  for (const char* big : {"0", "16385", "4294967297", "18446744073709551616"}) {
    auto n = parse_number("--width", big, 1, 16384);
    ASSERT_FALSE(n) << big;
    EXPECT_TRUE(n.error().is(std::errc::result_out_of_range)) << big;
    EXPECT_NE(n.error().message().find("out of range"), std::string::npos);
  }
  EXPECT_FALSE(parse_number("--mode", "0778", 0, 0777, 8));
}

TEST(ParseNumberTest, ProgramsRefuseBadNumbersWithExitStatus2) {
  const std::vector<std::vector<std::string>> runs = {
      {SHMFD_PUB_BIN, "--width", "-1"},          {SHMFD_PUB_BIN, "--fps", "-1"},
      {SHMFD_PUB_BIN, "--width", "4294967297"},  {SHMFD_SUB_BIN, "--depth", "many"},
      {SHMFD_BROKER_BIN, "--max-clients", "-5"}, {SHMFDCTL_BIN, "top", "--count", "abc"},
      {SHMFDCTL_BIN, "top", "--interval", "0"},  {SHMFDCTL_BIN, "top", "--count"},
      {SHMFDCTL_BIN, "--json", "top"},           {SHMFDCTL_BIN, "status", "--socket"},
      {SHMFDCTL_BIN, "status", "extra"},         {SHMFDCTL_BIN, "memfds", "-3"},
  };
  for (const auto& args : runs) {
    testing::Program p(args);
    EXPECT_EQ(p.wait(), 2) << args[1] << " " << args[2] << ": " << p.output();
    EXPECT_FALSE(p.output().empty());
  }
}

}  // namespace
}  // namespace shmfd
