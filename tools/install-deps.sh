#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing shmfd needs, and only the ones that
# are missing, so a machine that has them all is not touched (and needs no network).
#   tools/install-deps.sh            build + test dependencies
#   tools/install-deps.sh EXTRA...   the same plus EXTRA packages (e.g. for benchmarks)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config ccache
  libasio-dev            # standalone Asio 1.22 (header-only)
  capnproto libcapnp-dev # Cap'n Proto 0.9.2: schema compiler + runtime
  libexpected-dev        # tl::expected: errors as values
  libgtest-dev           # GoogleTest
  libbenchmark-dev       # Google Benchmark
  nlohmann-json3-dev     # JSON for shmfdctl --json and its tests
  libpng-dev             # PNG snapshots in the camera example
  libseccomp-dev         # shmfd::restrict_syscalls() builds its seccomp-bpf filter with it
  libsystemd-dev         # the broker: socket activation and sd_notify readiness
  systemd                # tests: systemd-socket-activate, systemd-analyze verify
  python3                # tests: a stand-in for systemd's notify socket
  man-db                 # tests: man -w and systemd-analyze verify resolve Documentation=man:
  dpkg-dev file          # make deb: CPack's DEB generator (dpkg-shlibdeps, file)
  help2man               # man pages generated from each program's --help
  doxygen                # make docs: the API reference (its warnings fail make test)
  lintian                # make test-deb: the packages pass Debian's checks
  python3-dev pybind11-dev python3-numpy  # the Python package: its extension, its arrays
  python3-pytest         # tests: the Python package's suite
  cyclonedds-dev cyclonedds-tools  # shmfd-dds-bridge: Eclipse Cyclone DDS 0.10 and its idlc
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev  # the GStreamer plugin (1.22)
  gstreamer1.0-tools     # gst-launch-1.0, gst-inspect-1.0: the plugin's tests and examples
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good   # videotestsrc, pngenc, wavenc, vp8enc
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing missing Debian packages: ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
  sudo_cmd=()
elif command -v sudo >/dev/null; then
  sudo_cmd=(sudo)
else
  echo "install-deps: not root and no sudo; install these as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
