// The programs as a user first meets them: --help names the default socket as the README
// describes it (a user's, then root's), and shmfd-pub says what it does.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/broker_fixture.hpp"
#include "support/program.hpp"

namespace shmfd {
namespace {

TEST(ProgramsHelpTest, EachNamesBothDefaultSockets) {
  for (const char* bin : {SHMFD_BROKER_BIN, SHMFDCTL_BIN, SHMFD_PUB_BIN, SHMFD_SUB_BIN}) {
    testing::Program program({bin, "--help"});
    EXPECT_EQ(program.wait(), 0) << bin << ": " << program.output();
    EXPECT_NE(program.output().find("$XDG_RUNTIME_DIR/shmfd/broker.sock"), std::string::npos)
        << bin << ": " << program.output();
    EXPECT_NE(program.output().find("/run/shmfd/broker.sock as root"), std::string::npos)
        << bin << ": " << program.output();
  }
}

class ProgramsTest : public testing::BrokerFixture {};

TEST_F(ProgramsTest, PubAtFpsZeroSaysAsFastAsItMay) {
  testing::Program pub({SHMFD_PUB_BIN, "--socket", socket(), "--topic", "fast", "--fps", "0",
                        "--frames", "3", "--width", "16", "--height", "16"});
  EXPECT_EQ(pub.wait(), 0) << pub.output();
  EXPECT_NE(pub.output().find("on 'fast' as fast as it may"), std::string::npos) << pub.output();
  EXPECT_EQ(pub.output().find("at 0 fps"), std::string::npos) << pub.output();
}

}  // namespace
}  // namespace shmfd
