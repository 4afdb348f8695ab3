# shmfd_add_pytest(NAME <test> DIR <folder> [TIMEOUT <s>] [ENV <VAR=value>...]): a pytest suite
# as one ctest test, run by Debian's python3 (for which python3-numpy and python3-pytest are
# installed) with the build tree's Python package on PYTHONPATH and no cache written into the
# source tree. ENV adds variables; the programs a suite runs are passed this way, as
# $<TARGET_FILE:...> generator expressions.
function(shmfd_add_pytest)
  cmake_parse_arguments(PARSE_ARGV 0 ARG "" "NAME;DIR;TIMEOUT" "ENV")
  if(NOT ARG_NAME OR NOT ARG_DIR)
    message(FATAL_ERROR "shmfd_add_pytest: NAME and DIR are required")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3)
  endif()
  find_package(Python3 3.9 REQUIRED COMPONENTS Interpreter)
  add_test(NAME ${ARG_NAME}
           COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider ${ARG_DIR})
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;${ARG_ENV}")
endfunction()
