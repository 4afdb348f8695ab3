# Thin wrapper over CMake: every target installs missing Debian packages first, then configures
# and builds what it needs. All executables land in build/bin/ (build-asan/bin/ for sanitizers).
JOBS      ?= 2
BUILD     ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
CMAKE_FLAGS ?=
# make install: into $(DESTDIR)$(PREFIX) (see docs/install.md).
PREFIX    ?= /usr/local
DESTDIR   ?=
DEB_BUILD ?= build-deb
# ccache needs a writable cache directory even where HOME is unset (some CI environments).
export CCACHE_DIR ?= $(if $(HOME),$(HOME)/.cache/ccache,/tmp/shmfd-ccache)
# Paths below the checkout are hashed relative to it, and the build directory's own path is not
# hashed: build/, build-deb/ and other checkouts share their objects where the flags agree
# (the packages' build reuses make test's). Debug info then names build/ as a compile directory.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= true
# Sanitizer builds: line tables only (all that a report's stack needs; full debug info costs a
# fifth of their compile time) and no benchmarks (nothing runs them there).
SANITIZER_FLAGS = -DSHMFD_BUILD_BENCH=OFF

.PHONY: all deps build docs install deb test-deb test test-asan test-tsan fuzz soak bench bench-dds bench-core demo demo-pubsub demo-gstreamer demo-handoff format clean

all: build

deps:
	@tools/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The API reference (every public header) and the guides, as HTML: $(BUILD)/docs/html/index.html.
# A Doxygen warning fails it (make test runs it too, as docs.reference).
docs: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) --target docs
	@echo "open $(BUILD)/docs/html/index.html"

# The libraries (C++ and C), headers, schemas, CMake package, pkg-config files, the Python
# package, programs, man pages, systemd units and an example policy, under $(DESTDIR)$(PREFIX).
install: deps $(BUILD)/build.ninja
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX="$(PREFIX)" >/dev/null  # unit paths, RPATH
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

# Debian packages in $(DEB_BUILD)/: libshmfd0.5 (the library), libshmfd-c1 (the C API),
# libshmfd-dev (headers, CMake package, pkg-config, schemas), python3-shmfd (the Python package)
# and shmfd (broker, tools, units, man pages), built for /usr.
deb: deps
	cmake -S . -B $(DEB_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_INSTALL_PREFIX=/usr -DSHMFD_BUILD_TESTS=OFF -DSHMFD_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(DEB_BUILD) -j $(JOBS)
	cd $(DEB_BUILD) && cpack -G DEB
	@ls $(DEB_BUILD)/*.deb

# Installs the packages with apt, runs the installed broker and tools, builds a program
# against libshmfd-dev, and removes them (root; changes this machine's /usr while it runs).
test-deb: deb
	tests/system/install/deb_test.sh $(DEB_BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
	  -DSHMFD_SANITIZE=address,undefined $(SANITIZER_FLAGS) $(CMAKE_FLAGS)

test-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

$(TSAN_BUILD)/build.ninja: | deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
	  -DSHMFD_SANITIZE=thread $(SANITIZER_FLAGS) $(CMAKE_FLAGS)

# ThreadSanitizer over everything that runs on more than one thread (the in-process broker
# and its client threads in the tests).
test-tsan: deps $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang, ASan, UBSan): message decoding, layout validation and the broker's
# handling of a client's datagram stream, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	JOBS=$(JOBS) tools/fuzz.sh $(FUZZ_SECONDS)

# Crash and soak: a million frames through a real broker while producers and consumers are
# killed with SIGKILL and restarted; the broker's fds and RSS and the machine's Shmem must
# come back to their baselines. (A 30 000-frame version runs under make test.)
SOAK_FRAMES ?= 1000000
soak: build
	$(BUILD)/bin/shmfd-soak --frames $(SOAK_FRAMES) --max-seconds 900

# The camera pipeline: shmfd-broker, a synthetic camera, a PNG snapshot consumer and a frame
# analyser on the same pages, for ten seconds.
demo: build
	examples/camera/demo.sh $(BUILD)/bin

# shmfd-pub and two shmfd-sub consumers (drop-oldest and block-producer) for five seconds.
demo-pubsub: build
	examples/pubsub/demo.sh $(BUILD)/bin

# GStreamer pipelines joined by shmfd: a camera pipeline into shmfdsink, PNG snapshots and a
# WebM recording from shmfdsrc, and shmfd-analyze, for five seconds (gst-demo/).
demo-gstreamer: build
	examples/gstreamer/demo.sh $(BUILD)/bin

# Two processes, no broker: sealed frames over a socketpair, and the refusals.
demo-handoff: build
	$(BUILD)/bin/shmfd-sealed-handoff

# The benchmark suite against baselines and peers (iceoryx, ZeroMQ, GStreamer, installed from
# Debian here): bench/results/results.md, results.json and chart.svg.
bench: build
	BUILD=$(BUILD) JOBS=$(JOBS) bench/run.sh

# The building blocks alone (memfd, seals, verify, transport, wire), with Google Benchmark.
# Frames through two shmfd-dds-bridges over loopback DDS, against the local path (Python).
bench-dds: build
	PYTHONPATH=$(BUILD)/python /usr/bin/python3 bench/suite/dds_bridge.py $(BUILD)

bench-core: build
	$(BUILD)/bin/shmfd-bench-core

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(DEB_BUILD) build-fuzz
