# The client API names no Cap'n Proto type: each header below, compiled alone, must include no
# capnp/ or kj/ header, directly or through another. Run by ctest as
#   cmake -DCXX=... -DINCLUDE_DIRS="a;b" -DHEADERS="x.hpp;y.hpp" -DWORK_DIR=... -P client_headers.cmake
# It lists each header's dependencies with the compiler (-M) and fails naming the first
# forbidden one and the header that pulled it in.
set(_failed "")
foreach(_header IN LISTS HEADERS)
  string(MAKE_C_IDENTIFIER "${_header}" _id)
  set(_source "${WORK_DIR}/client_header_${_id}.cpp")
  file(WRITE "${_source}" "#include <shmfd/${_header}>\n")
  set(_args -std=c++20 -M)
  foreach(_dir IN LISTS INCLUDE_DIRS)
    list(APPEND _args "-I${_dir}")
  endforeach()
  execute_process(COMMAND "${CXX}" ${_args} "${_source}"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _deps ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(SEND_ERROR "shmfd/${_header} does not compile alone:\n${_err}")
    list(APPEND _failed "${_header}")
    continue()
  endif()
  string(REGEX MATCH "[^ \n\\\\]*/(capnp|kj)/[^ \n\\\\]*" _bad "${_deps}")
  if(_bad)
    message(SEND_ERROR "shmfd/${_header} includes ${_bad}: the client API must not need "
                       "Cap'n Proto (move the code that does into a wire-level header)")
    list(APPEND _failed "${_header}")
  else()
    message(STATUS "shmfd/${_header}: no capnp/ or kj/ header")
  endif()
endforeach()
if(_failed)
  message(FATAL_ERROR "client headers that need Cap'n Proto: ${_failed}")
endif()
