# Every dependency comes from a Debian 12 package (tools/install-deps.sh installs them);
# nothing is vendored or downloaded at build time.
find_package(Threads REQUIRED)
find_package(CapnProto 0.9 REQUIRED CONFIG)
find_package(tl-expected 1.0 REQUIRED CONFIG)

# Debian's libasio-dev ships standalone Asio 1.22 as headers only, without a CMake package.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(shmfd_asio INTERFACE)
target_include_directories(shmfd_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(shmfd_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(shmfd_asio INTERFACE Threads::Threads)

if(SHMFD_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(SHMFD_BUILD_BENCH)
  find_package(benchmark REQUIRED CONFIG)
endif()
