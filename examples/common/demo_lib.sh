# Shell helpers for the demo scripts (sourced): a private temp directory, background programs
# started in order and waited for by what they print, and clean-up of everything on any exit,
# including Ctrl+C.
dir=$(mktemp -d /tmp/shmfd-demo.XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PATTERN COMMAND...: runs COMMAND with stdout to $dir/NAME.out and stderr to
# $dir/NAME.log, and returns once that stderr shows PATTERN (read through a fifo: no polling).
start() {
  local name=$1 pattern=$2
  shift 2
  mkfifo "$dir/$name.fifo"
  "$@" 2> "$dir/$name.fifo" > "$dir/$name.out" &
  pids+=($!)
  local fd
  exec {fd}< "$dir/$name.fifo"
  local line=""
  while IFS= read -r line <&"$fd"; do
    echo "$line" >> "$dir/$name.log"
    [[ $line == *"$pattern"* ]] && break
  done
  cat <&"$fd" >> "$dir/$name.log" &
  exec {fd}<&-
  [[ $line == *"$pattern"* ]] || { echo "demo: $name did not start:"; cat "$dir/$name.log"; exit 1; }
}
