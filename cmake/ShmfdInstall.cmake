# What `make install` and the Debian packages install, beyond each directory's own rules:
# the CMake package (find_package(shmfd 0.5 CONFIG)), shmfd.pc and shmfd-c.pc, and the programs.
# Components: lib (libshmfd.so.*), clib (libshmfd-c.so.*, the C API), dev (headers, schemas,
# CMake package, pkg-config, libshmfd.so, libshmfd-c.so), bin (broker, tools, systemd units,
# man pages).
include(CMakePackageConfigHelpers)

set(SHMFD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shmfd)
install(EXPORT shmfdTargets NAMESPACE shmfd:: DESTINATION ${SHMFD_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(packaging/shmfdConfig.cmake.in
  ${PROJECT_BINARY_DIR}/shmfdConfig.cmake INSTALL_DESTINATION ${SHMFD_CMAKE_DIR})
# 0.x: 0.5.y serves anyone asking for 0.5 (same ABI); 0.6 does not.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/shmfdConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/shmfdConfig.cmake ${PROJECT_BINARY_DIR}/shmfdConfigVersion.cmake
  DESTINATION ${SHMFD_CMAKE_DIR} COMPONENT dev)

# pkg-config: the prefix is found from the .pc file's own place (${pcfiledir}), so a tree
# installed with another --prefix or a DESTDIR still describes itself. Those files are made in
# packaging/ of the build tree, for installing only: they describe an installed tree.
# shmfd_pc_files(DIR PREFIX LIBDIR INCLUDEDIR CFLAGS SCHEMADIR): shmfd.pc and shmfd-c.pc in DIR.
function(shmfd_pc_files dir SHMFD_PC_PREFIX SHMFD_PC_LIBDIR SHMFD_PC_INCLUDEDIR SHMFD_PC_INCLUDES
         SHMFD_PC_SCHEMADIR)
  configure_file(packaging/shmfd.pc.in ${dir}/shmfd.pc @ONLY)
  configure_file(packaging/shmfd-c.pc.in ${dir}/shmfd-c.pc @ONLY)
endfunction()
file(RELATIVE_PATH _to_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" _to_prefix "${_to_prefix}")
shmfd_pc_files(${PROJECT_BINARY_DIR}/packaging "\${pcfiledir}/${_to_prefix}"
  "\${prefix}/${CMAKE_INSTALL_LIBDIR}" "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}" "-I\${includedir}"
  "\${prefix}/${CMAKE_INSTALL_DATADIR}/shmfd/proto")
install(FILES ${PROJECT_BINARY_DIR}/packaging/shmfd.pc ${PROJECT_BINARY_DIR}/packaging/shmfd-c.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
# And the build tree's own, which work in place, without installing (docs/install.md):
#   PKG_CONFIG_PATH=build/pkgconfig pkg-config --cflags --libs shmfd
shmfd_pc_files(${PROJECT_BINARY_DIR}/pkgconfig ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/libshmfd
  ${PROJECT_SOURCE_DIR}/libshmfd/include "-I\${includedir} -I${PROJECT_BINARY_DIR}/proto"
  ${PROJECT_SOURCE_DIR}/proto)

install(TARGETS shmfd-broker shmfdctl shmfd-pub shmfd-sub RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT bin)

# The service: systemd units, tmpfiles and sysusers entries, and an example policy. Paths are
# relative to the prefix (a prefix of /usr puts units in /usr/lib/systemd/system, which
# systemd reads), except /etc for a /usr install, where Debian keeps configuration.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(SHMFD_ETCDIR /etc/shmfd)
else()
  set(SHMFD_ETCDIR ${CMAKE_INSTALL_SYSCONFDIR}/shmfd)
endif()
set(SHMFD_FULL_ETCDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/shmfd)
configure_file(packaging/systemd/shmfd-broker.service.in
  ${PROJECT_BINARY_DIR}/systemd/shmfd-broker.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/systemd/shmfd-broker.service
              packaging/systemd/shmfd-broker.socket
  DESTINATION lib/systemd/system COMPONENT bin)
install(FILES packaging/systemd/shmfd.tmpfiles DESTINATION lib/tmpfiles.d RENAME shmfd.conf
  COMPONENT bin)
install(FILES packaging/systemd/shmfd.sysusers DESTINATION lib/sysusers.d RENAME shmfd.conf
  COMPONENT bin)
install(FILES packaging/policy.example DESTINATION ${SHMFD_ETCDIR} RENAME policy COMPONENT bin)

# Man pages, generated from each program's --help by help2man (Debian's help2man) at build
# time, so they cannot drift from it.
find_program(SHMFD_HELP2MAN help2man REQUIRED)
set(_shmfd_programs
  "shmfd-broker=route verified memfd frames from producers to consumers by topic"
  "shmfdctl=show what the shmfd broker and every process hold"
  "shmfd-pub=publish a moving test pattern on a shmfd topic"
  "shmfd-sub=subscribe to a shmfd topic and report frames, rate, latency and drops")
if(TARGET shmfd-dds-bridge)
  list(APPEND _shmfd_programs "shmfd-dds-bridge=bridge shmfd topics to a DDS domain and back")
endif()
set(_shmfd_man_pages)
foreach(_entry IN LISTS _shmfd_programs)
  string(REPLACE "=" ";" _pair "${_entry}")
  list(GET _pair 0 _program)
  list(GET _pair 1 _name)
  set(_page ${PROJECT_BINARY_DIR}/man/man1/${_program}.1)
  # Installed compressed, as Debian's policy asks; gzip -n keeps the bytes reproducible.
  add_custom_command(OUTPUT ${_page} ${_page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man/man1
    COMMAND ${SHMFD_HELP2MAN} --no-info --section 1 --name "${_name}"
            --version-string "${PROJECT_VERSION}" --source "shmfd ${PROJECT_VERSION}"
            --manual "shmfd" --help-option --help --output ${_page} $<TARGET_FILE:${_program}>
    COMMAND gzip -9nkf ${_page}
    DEPENDS ${_program}
    COMMENT "Generating ${_program}(1) from its --help"
    VERBATIM)
  list(APPEND _shmfd_man_pages ${_page}.gz)
endforeach()
add_custom_target(shmfd_man_pages ALL DEPENDS ${_shmfd_man_pages})
install(FILES ${_shmfd_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT bin)
