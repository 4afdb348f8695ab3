# Warnings, sanitizers and ccache for every shmfd target. Third-party headers are found as
# SYSTEM includes, so -Werror only applies to our own code.
find_program(SHMFD_CCACHE ccache)
if(SHMFD_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${SHMFD_CCACHE})
endif()

add_library(shmfd_warnings INTERFACE)
target_compile_options(shmfd_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wconversion -Wsign-conversion -Wimplicit-fallthrough -Wformat=2)
if(SHMFD_WERROR)
  target_compile_options(shmfd_warnings INTERFACE -Werror)
endif()

if(SHMFD_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${SHMFD_SANITIZE}")
  foreach(_s IN LISTS _sanitizers)
    add_compile_options(-fsanitize=${_s})
    add_link_options(-fsanitize=${_s})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND "undefined" IN_LIST _sanitizers)
    # Clang 14's -fsanitize=function puts data before each function, which split coroutine
    # frames cannot carry ("Cannot represent a difference across sections").
    add_compile_options(-fno-sanitize=function)
  endif()
  if("thread" IN_LIST _sanitizers)
    # Asio's handler recycling uses atomic_thread_fence, which TSan cannot model; GCC warns.
    add_compile_options(-Wno-tsan)
  endif()
endif()
