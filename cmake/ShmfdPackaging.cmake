# Debian packages with CPack's DEB generator (`make deb`), one per install component:
#   libshmfd0.5   lib  the shared library (its name follows the SONAME)
#   libshmfd-c1   clib the C API's library, libshmfd-c.so.1 (stable ABI)
#   libshmfd-dev  dev  headers (shmfd.h too), generated headers, schemas, CMake package,
#                      shmfd.pc, shmfd-c.pc
#   shmfd         bin  broker, tools, man pages, systemd units, sysusers, example policy
#   python3-shmfd python  the Python package (with SHMFD_BUILD_PYTHON)
#   gstreamer1.0-shmfd gstreamer  the GStreamer plugin (with SHMFD_BUILD_GSTREAMER)
# CPack rather than a debian/ directory: the split, the SONAME and the file lists already live
# in the install() rules, so the packages cannot drift from `make install`.
# The Maintainer field and the changelogs' signature: set it (or DEBFULLNAME and DEBEMAIL, as
# for dch) when you distribute the packages. The default's .invalid domain (RFC 2606) says
# plainly that no one answers there.
if(DEFINED ENV{DEBEMAIL})
  set(_maintainer "$ENV{DEBFULLNAME} <$ENV{DEBEMAIL}>")
else()
  set(_maintainer "shmfd developers <maintainers@shmfd.invalid>")
endif()
set(SHMFD_MAINTAINER "${_maintainer}" CACHE STRING
    "The Maintainer field of the Debian packages: set it when you distribute them")
if(SHMFD_MAINTAINER STREQUAL "shmfd maintainers <root@localhost>")  # the old default, cached
  set(SHMFD_MAINTAINER "${_maintainer}" CACHE STRING "" FORCE)
endif()

set(CPACK_PACKAGE_NAME shmfd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${SHMFD_MAINTAINER}")
set(CPACK_PACKAGE_VENDOR shmfd)
# Each package's first description line is its own summary. CPackDeb would put one shared
# summary above them, except when the summary is CPack's default: so it is set to that.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_COMPONENTS_ALL lib clib dev bin)
if(TARGET shmfd_python)
  list(APPEND CPACK_COMPONENTS_ALL python)
endif()
if(TARGET gstshmfd)
  list(APPEND CPACK_COMPONENTS_ALL gstreamer)
endif()
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_STRIP_FILES ON)  # debug info stays in the build tree (build-deb/), as dbgsym would
# Dependencies from the libraries each binary links (dpkg-shlibdeps); libshmfd itself is
# found in the build tree and depended on through the component dependencies below.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/libshmfd)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
# A shlibs file for each package with a shared library (CPack 3.25 reads only the global
# switch), so programs built against them depend on the version that has their symbols.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libshmfd${SHMFD_SOVERSION})
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
# dpkg runs ldconfig once after installing any number of libraries (triggers).
set(CPACK_DEBIAN_LIB_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/lib/triggers)
set(CPACK_DEBIAN_LIB_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (library)\n\
libshmfd moves frames between processes without copying them: sealed memfd\n\
buffers passed over Unix sockets and verified by shmfd-broker before any\n\
consumer maps them.")

set(CPACK_DEBIAN_CLIB_PACKAGE_NAME libshmfd-c1)
set(CPACK_DEBIAN_CLIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_CLIB_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/lib/triggers)
set(CPACK_COMPONENT_CLIB_DEPENDS lib)
set(CPACK_DEBIAN_CLIB_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (C API library)\n\
libshmfd-c is the C API of shmfd (shmfd.h), with a stable ABI, for C programs\n\
and for every language that calls C.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libshmfd-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS lib clib)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libcapnp-dev (>= 0.9), libexpected-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (development files)\n\
Headers (the C++ API and shmfd.h), the Cap'n Proto schemas, the CMake package\n\
(find_package(shmfd)), shmfd.pc and shmfd-c.pc.")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-shmfd)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_COMPONENT_PYTHON_DEPENDS lib)
# The extension is built for Debian's python3.11, and its arrays are numpy's.
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3 (>= 3.11), python3 (<< 3.12), python3-numpy")
set(CPACK_DEBIAN_PYTHON_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (Python 3)\n\
The Python package shmfd: frames as read-only numpy arrays that are the\n\
producer's very pages, pool slots written in place, asyncio iteration.")

# Named as Debian names GStreamer plugin packages; its GStreamer dependencies come from what
# the plugin links (dpkg-shlibdeps).
set(CPACK_DEBIAN_GSTREAMER_PACKAGE_NAME gstreamer1.0-shmfd)
set(CPACK_DEBIAN_GSTREAMER_PACKAGE_SECTION video)
set(CPACK_COMPONENT_GSTREAMER_DEPENDS lib)
set(CPACK_DEBIAN_GSTREAMER_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (GStreamer plugin)\n\
The GStreamer 1.22 elements shmfdsink and shmfdsrc: frames between pipelines\n\
in different processes through shmfd-broker, written in place and mapped\n\
read-only, zero-copy.")

set(CPACK_DEBIAN_BIN_PACKAGE_NAME shmfd)
set(CPACK_DEBIAN_BIN_PACKAGE_SECTION net)
set(CPACK_COMPONENT_BIN_DEPENDS lib)
set(CPACK_DEBIAN_BIN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_BIN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_BIN_DESCRIPTION
    "zero-copy IPC with verified, sealed memfds (broker and tools)\n\
shmfd-broker, the socket-activated systemd service that verifies and routes\n\
frames by topic; shmfdctl, which shows what the broker and every process hold;\n\
shmfd-pub and shmfd-sub.")

# What Debian asks of every package: /usr/share/doc/<package>/copyright, and changelogs a user
# can read (changelog.gz is CHANGELOG.md; changelog.Debian.gz one entry per version of it),
# made at build time by tools/debian_changelog.py, which fails if CHANGELOG.md's newest
# version is not the project's.
find_program(SHMFD_PYTHON3 python3 REQUIRED)
set(_pkgdoc ${PROJECT_BINARY_DIR}/packaging/doc)
add_custom_command(
  OUTPUT ${_pkgdoc}/changelog.gz ${_pkgdoc}/changelog.Debian.gz
  COMMAND ${SHMFD_PYTHON3} ${PROJECT_SOURCE_DIR}/tools/debian_changelog.py
          ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${PROJECT_VERSION} ${CPACK_DEBIAN_PACKAGE_RELEASE}
          ${SHMFD_MAINTAINER} ${_pkgdoc}
  DEPENDS ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${PROJECT_SOURCE_DIR}/tools/debian_changelog.py
  COMMENT "Changelogs of the Debian packages from CHANGELOG.md"
  VERBATIM)
add_custom_target(shmfd_package_docs ALL DEPENDS ${_pkgdoc}/changelog.gz
                                                 ${_pkgdoc}/changelog.Debian.gz)
foreach(_component IN LISTS CPACK_COMPONENTS_ALL)
  string(TOUPPER ${_component} _upper)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright ${_pkgdoc}/changelog.gz
                ${_pkgdoc}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${CPACK_DEBIAN_${_upper}_PACKAGE_NAME}
          COMPONENT ${_component})
endforeach()

include(CPack)
