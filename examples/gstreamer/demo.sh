#!/usr/bin/env bash
# GStreamer pipelines in separate processes, joined by shmfd: a camera pipeline (v4l2src on
# /dev/video0 where a camera exists, videotestsrc otherwise) publishes NV12 frames with
# shmfdsink; one pipeline writes a PNG snapshot a second, one encodes VP8 into a WebM file,
# and shmfd-analyze (a plain shmfd consumer) reads every frame too. All of them map the same
# pages. Runs for SECONDS, then prints a summary; nothing is left behind but the output files.
#   examples/gstreamer/demo.sh [BIN_DIR] [SECONDS] [OUT_DIR]
set -euo pipefail
bin=${1:-build/bin}
seconds=${2:-5}
out=${3:-$(cd "$bin/.." && pwd)/gst-demo}
# The plugin of this build, unless GST_PLUGIN_PATH is set (or it is installed).
if [[ -z ${GST_PLUGIN_PATH:-} && -e $bin/../gst/libgstshmfd.so ]]; then
  export GST_PLUGIN_PATH=$(cd "$bin/../gst" && pwd)
fi
source "$(dirname "$0")/../common/demo_lib.sh"
export GST_REGISTRY=${GST_REGISTRY:-$dir/registry.bin}  # the plugin registry, private
sock=$dir/broker.sock
fps=30
mkdir -p "$out"
rm -f "$out"/snapshot-*.png "$out"/camera.webm

if [[ -c /dev/video0 ]]; then
  camera="v4l2src device=/dev/video0 ! videoconvert ! videoscale"
  what="the camera /dev/video0"
else
  camera="videotestsrc is-live=true pattern=ball"
  what="videotestsrc (no camera at /dev/video0)"
fi
caps="video/x-raw,format=NV12,width=1280,height=720,framerate=$fps/1"

# gst-launch-1.0 writes its progress to stdout: start() reads it from stderr.
launch() { exec gst-launch-1.0 "$@" 1>&2; }

start broker "listening on" "$bin/shmfd-broker" --socket "$sock"
# The consumers subscribe first, so they see the first frame.
start snapshots "Setting pipeline to PLAYING" launch \
  shmfdsrc socket-path="$sock" topic=camera/0 ! videorate ! video/x-raw,framerate=1/1 ! \
  videoconvert ! pngenc ! \
  multifilesink location="$out/snapshot-%03d.png"
start recorder "Setting pipeline to PLAYING" launch \
  shmfdsrc socket-path="$sock" topic=camera/0 queue-depth=8 ! videoconvert ! \
  vp8enc deadline=1 cpu-used=8 ! webmmux ! filesink location="$out/camera.webm"
start analyze "subscribed" "$bin/shmfd-analyze" --socket "$sock" --topic camera/0 --no-check

echo "demo: $what, 1280x720 NV12 at $fps fps for $seconds s, through $sock"
# In the background and waited for, so Ctrl+C reaches the clean-up at once. Each consumer
# ends at the camera's end of stream. (16 slots: 4 frames for each of the three consumers,
# and the frames the camera pipeline fills meanwhile. sync=false: a live source's frames go out
# as soon as they are captured, not a frame later on the pipeline clock.)
gst-launch-1.0 -q $camera num-buffers=$((seconds * fps)) ! $caps ! \
  shmfdsink socket-path="$sock" topic=camera/0 slots=16 sync=false > "$dir/camera.log" 2>&1 &
pids+=($!)
wait "${pids[4]}" || { echo "demo: the camera pipeline failed:"; cat "$dir/camera.log"; exit 1; }
wait "${pids[1]}" "${pids[2]}" "${pids[3]}"

pngs=("$out"/snapshot-*.png)
bad=0
for png in "${pngs[@]}"; do
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || bad=$((bad + 1))
done
webm=$(head -c 4 "$out/camera.webm" | od -An -tx1 | tr -d ' \n')
echo "summary:"
echo "  $(cat "$dir/analyze.out")"
echo "  PNG snapshots: ${#pngs[@]} in $out, not PNG: $bad"
echo "  WebM recording: $out/camera.webm, $(stat -c %s "$out/camera.webm") bytes, EBML header: $([[ $webm == 1a45dfa3 ]] && echo yes || echo no)"
[[ ${#pngs[@]} -ge 1 && $bad -eq 0 && $webm == 1a45dfa3 ]]
