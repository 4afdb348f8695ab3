# The install tests' shared parts (sourced): a work directory removed on exit with the broker
# started in it, fail(), and building programs with pkg-config as a user would. Set `name`
# before sourcing.
work=$(mktemp -d "/tmp/shmfd-$name-XXXXXX")
broker_pid=
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$name: $*" >&2; exit 1; }

# start_broker BROKER SOCKET: runs it in the background (its log in $work/broker.log) until
# its socket exists.
start_broker() {
  "$1" --socket "$2" 2>"$work/broker.log" &
  broker_pid=$!
  for _ in $(seq 100); do [[ -S $2 ]] && break; sleep 0.05; done
  [[ -S $2 ]] || fail "the broker did not start: $(cat "$work/broker.log")"
}

# build_with_pkgconfig OUT SOURCE...: each .cpp with g++ and `pkg-config shmfd`, each .c with
# strict C11 gcc and `pkg-config shmfd-c`, into OUT<name without extension>, with the RPATH the
# .pc file's libdir gives. PKG_CONFIG_PATH says which .pc files.
build_with_pkgconfig() {
  local out=$1 src base
  shift
  for src in "$@"; do
    base=$(basename "${src%.*}")
    if [[ $src == *.cpp ]]; then
      # shellcheck disable=SC2046
      g++ -std=c++20 -Wall -Wextra -Werror -o "$out$base" "$src" \
        $(pkg-config --cflags --libs shmfd) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd)" ||
        fail "g++ with pkg-config shmfd failed ($src)"
    else
      # shellcheck disable=SC2046
      gcc -std=c11 -Wall -Wextra -Werror -Wpedantic -o "$out$base" "$src" \
        $(pkg-config --cflags --libs shmfd-c) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd-c)" ||
        fail "gcc with pkg-config shmfd-c failed ($src)"
    fi
  done
}

# run_pair CONSUMER PRODUCER OUT ARGS...: the consumer in the background until it says it
# subscribed, then the producer; both with ARGS, both must succeed. The consumer's output is in OUT.
run_pair() {
  local consumer=$1 producer=$2 out=$3 pid
  shift 3
  "$consumer" "$@" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q subscribed "$out" && break; sleep 0.05; done
  "$producer" "$@" || fail "$producer failed"
  wait "$pid" || fail "$consumer failed: $(cat "$out")"
}
