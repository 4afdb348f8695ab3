"""The gstshmfd plugin in real pipelines: shmfd-gst-probe (a pipeline with an appsink that
hashes the visible pixels of each frame) and gst-launch-1.0, against a real shmfd-broker."""
import json
import os
import signal
import struct
import subprocess
import time
import zlib

import pytest

from shmfd_broker import binary

PROBE = binary("SHMFD_GST_PROBE_BIN")


def probe_args(*args):
    return [PROBE, *args]


def run_probe(*args, timeout=60, env=None):
    return subprocess.run(probe_args(*args), capture_output=True, text=True, timeout=timeout,
                          env=env)


class Background:
    """A probe pipeline in the background that is known to have started (subscribed)."""

    def __init__(self, *args, env=None):
        self.process = subprocess.Popen(probe_args(*args), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline()
        assert line.strip() == "started", line + self.process.stderr.read()

    def finish(self, timeout=60):
        out, err = self.process.communicate(timeout=timeout)
        self.stdout, self.stderr = "started\n" + out, err
        return self.process.returncode


def frames(output):
    """The hash of each frame the probe's appsink got (or "" without --hash)."""
    return [(line.split() + [""])[2] for line in output.splitlines() if line.startswith("frame ")]


def props(output):
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line and
                not line.startswith(("error", "info", "qos")))


def leaks_env():
    env = dict(os.environ)
    env["GST_TRACERS"] = "leaks"
    env["GST_DEBUG"] = "GST_TRACER:7"
    return env


def assert_no_leaks(stderr):
    """The leaks tracer logs "object-alive, type-name=(string)GstBuffer, ..." per leak at exit
    (its format string, with %s, is logged first)."""
    assert "object-refings" in stderr, "the leaks tracer did not run"
    alive = [line for line in stderr.splitlines()
             if "object-alive, type-name=(string)" in line and "(string)%s" not in line]
    assert alive == [], "\n".join(alive[:20])


def broker_memfds(broker):
    out = subprocess.run([binary("SHMFDCTL_BIN"), "--json", "memfds", str(broker.process.pid)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def dev_shm():
    return set(os.listdir("/dev/shm"))


def src(broker, topic, *extra):
    return ["shmfdsrc", "name=src", f"socket-path={broker.socket}", f"topic={topic}", *extra]


def sink(broker, topic, *extra):
    return ["shmfdsink", "name=sink", f"socket-path={broker.socket}", f"topic={topic}", *extra]


def test_gst_inspect_documents_every_property():
    env = dict(os.environ)
    for element, names in [
        ("shmfdsink", ["socket-path", "topic", "guarantee", "slots", "huge-pages", "reconnect",
                       "copies", "published"]),
        ("shmfdsrc", ["socket-path", "topic", "queue-depth", "backpressure", "reconnect",
                      "received", "dropped", "copies"]),
    ]:
        out = subprocess.run(["gst-inspect-1.0", element], capture_output=True, text=True,
                             env=env, check=True).stdout
        for name in names:
            assert f"  {name} " in out, f"{element} does not document {name}"
        assert "drop-oldest" in out or element == "shmfdsink"


VIDEO = [
    ("RGBA", 320, 240),
    ("NV12", 320, 240),
    ("I420", 320, 240),
    ("RGBA", 321, 241),  # odd sizes: GStreamer pads every row to 4 bytes
    ("NV12", 321, 241),
    ("I420", 321, 241),
    ("BGRA", 77, 33),
    ("RGB", 123, 45),
    ("YUY2", 98, 31),
    ("GRAY8", 101, 17),
    ("GRAY16_LE", 65, 19),
]


@pytest.mark.parametrize("fmt,width,height", VIDEO, ids=[f"{f}-{w}x{h}" for f, w, h in VIDEO])
def test_every_frame_arrives_bit_exact_and_zero_copy(broker, fmt, width, height):
    caps = f"video/x-raw,format={fmt},width={width},height={height}"
    source = ["videotestsrc", "num-buffers=12", "pattern=ball", "!", caps]
    shm_before = dev_shm()
    consumer = Background("--hash", "--where", "--print", "src.received", "--print", "src.copies",
                          *src(broker, "video", "backpressure=block-producer"), "!",
                          "appsink", "name=out", "sync=false", env=leaks_env())
    producer = run_probe("--print", "sink.copies", "--print", "sink.published", *source, "!",
                         *sink(broker, "video", "sync=false"), env=leaks_env())
    assert producer.returncode == 0, producer.stdout + producer.stderr[-2000:]
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr[-2000:]
    expected = run_probe("--hash", *source, "!", "appsink", "name=out")
    assert frames(consumer.stdout) == frames(expected.stdout)
    assert len(frames(expected.stdout)) == 12
    # Zero-copy: upstream wrote into the slots, and every buffer downstream maps the memfd.
    assert props(producer.stdout) == {"sink.copies": "0", "sink.published": "12"}
    assert props(consumer.stdout) == {"src.received": "12", "src.copies": "0"}
    assert all(line.endswith("memfd yes") for line in consumer.stdout.splitlines()
               if line.startswith("frame "))
    assert_no_leaks(producer.stderr)
    assert_no_leaks(consumer.stderr)
    assert broker_memfds(broker) == []
    assert dev_shm() == shm_before


def fnv1a(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def test_a_layout_change_renegotiates_the_caps(broker):
    """A producer of the Python package changes size and format mid-stream; shmfdsrc follows."""
    shmfd = pytest.importorskip("shmfd", reason="the Python package is not built "
                                "(SHMFD_BUILD_PYTHON=OFF): it is this test's producer")
    consumer = Background("--caps", "--hash", *src(broker, "reneg", "backpressure=block-producer"),
                          "!", "appsink", "name=out", "sync=false")
    producer = shmfd.Producer(broker.socket, "reneg")
    producer.advertise("reneg", "image")
    sent = []
    for fmt, width, height, size in [("rgba8", 64, 48, 64 * 48 * 4), ("nv12", 32, 16, 32 * 24)]:
        for i in range(3):
            data = bytes((i * 31 + j * 7 + width) & 0xFF for j in range(size))
            producer.publish_bytes("reneg", data, shmfd.Layout.image(fmt, width, height))
            sent.append(fnv1a(data))
    producer.unadvertise("reneg")
    assert consumer.finish(timeout=30) == 0, consumer.stdout + consumer.stderr
    caps = [line for line in consumer.stdout.splitlines() if line.startswith("caps ")]
    assert len(caps) == 2, caps
    assert "format=(string)RGBA" in caps[0] and "width=(int)64, height=(int)48" in caps[0]
    assert "format=(string)NV12" in caps[1] and "width=(int)32, height=(int)16" in caps[1]
    assert frames(consumer.stdout) == sent


def test_sealed_topics_copy_each_frame_into_its_own_memfd(broker):
    caps = "video/x-raw,format=NV12,width=64,height=48"
    source = ["videotestsrc", "num-buffers=6", "pattern=smpte", "!", caps]
    consumer = Background("--hash", *src(broker, "sealed", "backpressure=block-producer"), "!",
                          "appsink", "name=out", "sync=false")
    producer = run_probe("--print", "sink.copies", *source, "!",
                         *sink(broker, "sealed", "guarantee=sealed", "sync=false"))
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    expected = run_probe("--hash", *source, "!", "appsink", "name=out")
    assert frames(consumer.stdout) == frames(expected.stdout)
    assert props(producer.stdout) == {"sink.copies": "6"}


def test_other_buffers_go_out_as_blobs_and_are_counted_as_copies(broker, tmp_path):
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(300_000))
    (tmp_path / "in.bin").write_bytes(data)
    consumer = Background(*src(broker, "blob", "backpressure=block-producer"), "!",
                          "filesink", f"location={tmp_path / 'out.bin'}")
    producer = run_probe("--print", "sink.copies", "filesrc", f"location={tmp_path / 'in.bin'}",
                         "blocksize=65536", "!", *sink(broker, "blob", "sync=false"))
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    assert (tmp_path / "out.bin").read_bytes() == data
    assert props(producer.stdout) == {"sink.copies": "5"}  # 300000 bytes in 64 KiB buffers


def wav_data(path):
    """The fmt and data chunks of a WAV file (the wave module reads no float samples)."""
    blob, pos, chunks = path.read_bytes(), 12, {}
    assert blob[:4] == b"RIFF" and blob[8:12] == b"WAVE"
    while pos + 8 <= len(blob):
        kind, size = struct.unpack("<4sI", blob[pos:pos + 8])
        chunks[kind] = blob[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return chunks[b"fmt "], chunks[b"data"]


@pytest.mark.parametrize("caps", [
    "audio/x-raw,format=S16LE,rate=48000,channels=2",
    "audio/x-raw,format=F32LE,rate=44100,channels=2,layout=non-interleaved",
    "audio/x-raw,format=S32LE,rate=16000,channels=1",
])
def test_audio_arrives_bit_exact(broker, tmp_path, caps):
    to_wav = ["audioconvert", "!", "audio/x-raw,layout=interleaved", "!", "wavenc", "!",
              "filesink"]
    source = ["audiotestsrc", "num-buffers=25", "wave=sine", "!", caps]
    consumer = Background(*src(broker, "audio", "backpressure=block-producer"), "!", *to_wav,
                          f"location={tmp_path / 'got.wav'}")
    producer = run_probe(*source, "!", *sink(broker, "audio", "sync=false"))
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    reference = run_probe(*source, "!", *to_wav, f"location={tmp_path / 'ref.wav'}")
    assert reference.returncode == 0
    got, ref = wav_data(tmp_path / "got.wav"), wav_data(tmp_path / "ref.wav")
    assert got[0] == ref[0]
    assert len(got[1]) == len(ref[1]) > 0
    assert got[1] == ref[1]


def read_png_rgba(path):
    """An 8-bit RGBA or RGB, non-interlaced PNG, as rows of bytes (RGBA)."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        body = blob[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 4 else
                    b"".join(bytes(line[x * 3:x * 3 + 3]) + b"\xff" for x in range(width)))
        prev = line
    return rows


def test_shmfd_camera_into_shmfdsrc_gives_pngs_of_the_cameras_pattern(broker, tmp_path):
    width, height = 64, 48
    camera = subprocess.Popen(
        [binary("SHMFD_CAMERA_BIN"), "--socket", broker.socket, "--width", str(width),
         "--height", str(height), "--fps", "100", "--frames", "3000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = run_probe(*src(broker, "camera/0", "num-buffers=5"), "!", "videoconvert", "!",
                        "pngenc", "compression-level=1", "!", "multifilesink",
                        f"location={tmp_path / 'snap-%02d.png'}")
        assert got.returncode == 0, got.stdout + got.stderr
    finally:
        camera.terminate()
        camera.wait(timeout=10)
    pngs = sorted(tmp_path.glob("snap-*.png"))
    assert len(pngs) == 5
    for png in pngs:
        rows = read_png_rgba(png)
        seq = rows[0][1] // 4  # green at (0, 0) is seq * 4 (mod 256): the pattern's period
        for y, row in enumerate(rows):
            for x in range(width):
                want = ((x + seq * 8) & 0xFF, (y + seq * 4) & 0xFF, (x ^ y) & 0xFF, 0xFF)
                assert tuple(row[x * 4:x * 4 + 4]) == want, f"{png.name} at ({x}, {y})"


def test_shmfdsink_feeds_shmfd_sub_and_shmfd_pub_feeds_shmfdsrc(broker):
    sub = subprocess.Popen([binary("SHMFD_SUB_BIN"), "--socket", broker.socket, "--topic", "gst",
                            "--block", "--frames", "10"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    producer = run_probe("videotestsrc", "num-buffers=10", "!",
                         "video/x-raw,format=RGBA,width=96,height=64", "!",
                         *sink(broker, "gst", "sync=false"))
    assert producer.returncode == 0, producer.stdout + producer.stderr
    out, _ = sub.communicate(timeout=30)
    assert sub.returncode == 0 and "10 frames" in out, out

    consumer = Background("--where", "--print", "src.received",
                          *src(broker, "demo/camera", "backpressure=block-producer"), "!",
                          "appsink", "name=out", "sync=false")
    pub = subprocess.run([binary("SHMFD_PUB_BIN"), "--socket", broker.socket, "--pool", "6",
                          "--frames", "20", "--fps", "200", "--width", "80", "--height", "60"],
                         capture_output=True, text=True, timeout=30)
    assert pub.returncode == 0, pub.stdout + pub.stderr
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    assert props(consumer.stdout) == {"src.received": "20"}
    assert consumer.stdout.count("memfd yes") == 20


def test_a_killed_consumer_pipeline_stalls_nothing_and_leaks_nothing(broker):
    shm_before = dev_shm()
    consumer = Background(*src(broker, "live", "backpressure=block-producer"), "!",
                          "appsink", "name=out", "sync=false", "max-buffers=1", "drop=false")
    producer = subprocess.Popen(
        probe_args("--print", "sink.published", "videotestsrc", "num-buffers=200",
                   "is-live=true", "!", "video/x-raw,format=NV12,width=320,height=240,"
                   "framerate=100/1", "!", *sink(broker, "live")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    consumer.process.send_signal(signal.SIGKILL)
    consumer.process.wait()
    out, err = producer.communicate(timeout=30)
    # The broker took back what the killed consumer held: the producer went on to the end.
    assert producer.returncode == 0, out + err
    assert props(out) == {"sink.published": "200"}
    assert broker_memfds(broker) == []
    assert dev_shm() == shm_before


def test_a_restarted_broker_is_reconnected_to_on_both_sides(broker):
    consumer = Background("--print", "src.received", *src(broker, "re", "reconnect=true"), "!",
                          "appsink", "name=out", "sync=false")
    producer = subprocess.Popen(
        probe_args("--print", "sink.published", "videotestsrc", "num-buffers=300",
                   "is-live=true", "!", "video/x-raw,format=RGBA,width=64,height=48,"
                   "framerate=100/1", "!", *sink(broker, "re", "reconnect=true")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    broker.stop()
    time.sleep(0.3)
    broker.start()
    out, err = producer.communicate(timeout=30)
    assert producer.returncode == 0, out + err
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    assert "Connected again to the shmfd broker" in consumer.stdout
    got = frames(consumer.stdout)
    received = int(props(consumer.stdout)["src.received"])
    assert received == len(got)
    assert 150 < received <= 300  # the frames of the restart's gap are lost, the rest arrive


def test_a_slow_drop_oldest_consumer_misses_frames_and_says_so(broker):
    consumer = Background("--print", "src.dropped", "--print", "src.received",
                          *src(broker, "slow", "queue-depth=2"), "!",
                          "identity", "sleep-time=20000", "!", "appsink", "name=out",
                          "sync=false")
    start = time.monotonic()
    producer = run_probe("--print", "sink.published", "videotestsrc", "num-buffers=100",
                         "is-live=true", "!",
                         "video/x-raw,format=GRAY8,width=64,height=48,framerate=200/1", "!",
                         *sink(broker, "slow"))
    took = time.monotonic() - start
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert props(producer.stdout) == {"sink.published": "100"}
    assert took < 5, f"the producer was held back: {took:.1f} s for 0.5 s of video"
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    p = props(consumer.stdout)
    dropped, received = int(p["src.dropped"]), int(p["src.received"])
    assert dropped > 0 and "qos dropped=" in consumer.stdout
    assert received < 100


def test_a_topic_another_producer_has_is_refused_with_the_brokers_reason(broker):
    first = subprocess.Popen(
        probe_args("videotestsrc", "is-live=true", "num-buffers=300", "!",
                   "video/x-raw,width=32,height=32,framerate=100/1", "!",
                   *sink(broker, "taken")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = run_probe("videotestsrc", "num-buffers=5", "!", "video/x-raw,width=32,height=32",
                       "!", *sink(broker, "taken"))
    first.kill()
    first.wait()
    assert second.returncode == 1
    assert "The shmfd broker refused topic \"taken\"" in second.stdout, second.stdout
    assert "topic" in second.stdout.split("refused topic", 1)[1]


@pytest.mark.parametrize("caps,why", [
    ("video/x-raw,format=BGRx", "shmfd carries no video format BGRx"),
    ("video/x-raw,format=YUY2,width=99,height=10", "yuyv width 99 is odd"),
    ("audio/x-raw,format=S24LE", "shmfd carries no audio format S24LE"),
])
def test_caps_shmfd_cannot_carry_are_refused_naming_why(broker, caps, why):
    source = "audiotestsrc" if caps.startswith("audio") else "videotestsrc"
    got = run_probe(source, "num-buffers=2", "!", caps, "!", *sink(broker, "x"))
    assert got.returncode == 1
    assert why in got.stdout, got.stdout


def test_a_lost_broker_is_an_error_without_reconnect(broker):
    producer = subprocess.Popen(
        probe_args("videotestsrc", "is-live=true", "num-buffers=500", "!",
                   "video/x-raw,width=32,height=32,framerate=100/1", "!", *sink(broker, "lost")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    broker.process.kill()
    broker.process.wait()
    out, err = producer.communicate(timeout=30)
    assert producer.returncode == 1, out + err
    assert "Lost the shmfd broker at" in out, out
    broker.process = None


def timed_frames(output):
    """(pts, dts, duration, flags, crop) of each frame a --times probe printed; None for none."""
    out = []
    for line in output.splitlines():
        if not line.startswith("frame "):
            continue
        words = line.split()
        field = {words[i]: words[i + 1] for i in range(2, len(words) - 1)
                 if words[i] in ("pts", "dts", "duration", "flags", "crop")}
        time_of = lambda k: None if field[k] == "none" else int(field[k])  # noqa: E731
        out.append((time_of("pts"), time_of("dts"), time_of("duration"), int(field["flags"], 16),
                    field.get("crop")))
    return out


def videotestsrc_times(n, num=30, den=1):
    """The pts and durations videotestsrc gives its first n buffers at num/den fps."""
    pts = [i * den * 1_000_000_000 // num for i in range(n + 1)]
    return pts[:n], [pts[i + 1] - pts[i] for i in range(n)]


@pytest.mark.parametrize("keep", [False, True], ids=["live", "producer-timestamps"])
def test_timestamps_durations_and_the_frame_rate_cross_exactly(broker, keep):
    # sync=false: frames leave far faster than their timestamps, so a source that stamped them
    # on arrival would squeeze them together.
    n = 45
    consumer = Background("--times", "--caps", *src(broker, "timed", "backpressure=block-producer",
                                                      f"producer-timestamps={str(keep).lower()}"),
                          "!", "appsink", "name=out", "sync=false")
    producer = run_probe("videotestsrc", f"num-buffers={n}", "!",
                         "video/x-raw,format=RGBA,width=64,height=48,framerate=30/1", "!",
                         *sink(broker, "timed", "sync=false"))
    assert producer.returncode == 0, producer.stdout + producer.stderr
    assert consumer.finish() == 0, consumer.stdout + consumer.stderr
    assert "framerate=(fraction)30/1" in consumer.stdout, consumer.stdout
    got = timed_frames(consumer.stdout)
    assert len(got) == n, consumer.stdout
    pts, durations = videotestsrc_times(n)
    assert [g[2] for g in got] == durations
    if keep:
        assert [g[0] for g in got] == pts
    else:
        offset = got[0][0] - pts[0]
        assert offset > 0, "a live source's first frame lands on its running time"
        assert [g[0] - offset for g in got] == pts
    assert all(g[1] is None for g in got), "videotestsrc sets no dts"


def test_crop_flags_and_times_of_a_shmfd_producer_reach_a_pipeline_and_go_back_out(broker):
    # shmfd-pub -> shmfdsrc -> (probe, and a relay shmfdsrc ! shmfdsink) -> shmfd-sub --verbose:
    # the GstVideoCropMeta, pts and duration go both ways.
    viewer = Background("--times", "--caps",
                        *src(broker, "cropped", "backpressure=block-producer",
                             "producer-timestamps=true"),
                        "!", "appsink", "name=out", "sync=false")
    relay = Background(*src(broker, "cropped", "name=relay_src", "backpressure=block-producer",
                            "producer-timestamps=true"),
                       "!", *sink(broker, "relayed", "sync=false"))
    sub = subprocess.Popen([binary("SHMFD_SUB_BIN"), "--socket", broker.socket, "--topic",
                            "relayed", "--block", "--frames", "10", "--verbose"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    pub = subprocess.run([binary("SHMFD_PUB_BIN"), "--socket", broker.socket, "--topic",
                          "cropped", "--pool", "6", "--frames", "10", "--fps", "100",
                          "--width", "64", "--height", "48", "--crop", "8,4,32,24"],
                         capture_output=True, text=True, timeout=30)
    assert pub.returncode == 0, pub.stdout + pub.stderr
    assert viewer.finish() == 0, viewer.stdout + viewer.stderr
    assert "framerate=(fraction)100/1" in viewer.stdout, viewer.stdout
    got = timed_frames(viewer.stdout)
    assert [g[0] for g in got] == [i * 10_000_000 for i in range(10)]
    assert all(g[2] == 10_000_000 and g[4] == "8,4,32x24" for g in got), viewer.stdout
    assert relay.finish() == 0, relay.stdout + relay.stderr
    out, _ = sub.communicate(timeout=30)
    assert sub.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("seq ")]
    assert len(lines) == 10, out
    for i, line in enumerate(lines):
        assert f" pts {i * 10_000_000} " in line and " duration 10000000 " in line, line
        assert " crop 8,4 32x24" in line, line
    assert "frame rate 100/1" in out, out
