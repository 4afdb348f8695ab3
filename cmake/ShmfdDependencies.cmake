# Every dependency comes from a Debian 12 package (tools/install-deps.sh installs them);
# nothing is vendored or downloaded at build time.
find_package(Threads REQUIRED)
find_package(CapnProto 0.9 REQUIRED CONFIG)
find_package(tl-expected 1.0 REQUIRED CONFIG)
# libseccomp (Debian libseccomp-dev): restrict_syscalls() (shmfd/sandbox.hpp) builds its BPF
# filter with it rather than by hand, since it knows every architecture's system call numbers
# and emits the architecture check a hand-written filter gets wrong. libseccomp2 is on every
# Debian system already (apt and systemd need it).
find_package(PkgConfig REQUIRED)
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)

# Debian's libasio-dev ships standalone Asio 1.22 as headers only, without a CMake package.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(shmfd_asio INTERFACE)
target_include_directories(shmfd_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(shmfd_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # Asio 1.22 looks for clang's old coroutines TS (<experimental/coroutine>, libc++ only); clang
  # 14 in C++20 mode has standard coroutines, with libstdc++'s <coroutine>.
  target_compile_definitions(shmfd_asio INTERFACE ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1)
endif()
target_link_libraries(shmfd_asio INTERFACE Threads::Threads)

if(SHMFD_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(SHMFD_BUILD_BENCH)
  find_package(benchmark REQUIRED CONFIG)
endif()
