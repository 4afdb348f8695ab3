"""examples/python/ run against a real broker: the painter checked pixel by pixel by the C++
shmfd-sub, the statistics consumer on shmfd-camera's frames, and the worker's results."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import shmfd

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def example(name, *args):
    return [sys.executable, os.path.join(EXAMPLES, name), *args]


def camera(broker, *args):
    return subprocess.Popen(
        [os.environ["SHMFD_CAMERA_BIN"], "--socket", broker.socket, "--width", "64",
         "--height", "48", "--fps", "200", "--frames", "2000", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_topic(broker, topic):
    probe = shmfd.Consumer(broker.socket, "probe")
    for _ in range(500):
        try:
            probe.subscribe(topic)
            return probe
        except shmfd.BrokerRefusedError:
            time.sleep(0.01)
    pytest.fail(f"'{topic}' was never advertised")


def test_the_painters_frames_pass_shmfd_subs_pattern_check(broker, sub_bin):
    painter = subprocess.Popen(
        # 300 frames at 100 fps: shmfd-sub, which subscribes once the topic is there, gets 20
        # however late it comes.
        example("painter.py", "--socket", broker.socket, "--topic", "painted", "--width", "96",
                "--height", "40", "--frames", "300", "--fps", "100"),
        stdout=subprocess.PIPE, text=True,
    )
    wait_for_topic(broker, "painted")
    sub = subprocess.run(
        [sub_bin, "--socket", broker.socket, "--topic", "painted", "--frames", "20", "--block",
         "--check-pattern"],
        capture_output=True, text=True, timeout=30,
    )
    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert painter.wait(timeout=30) == 0


@pytest.mark.parametrize("fmt", ["rgba", "nv12"])
def test_camera_stats_checks_every_pixel_of_the_camera(broker, fmt):
    cam = camera(broker, "--format", fmt)
    try:
        wait_for_topic(broker, "camera/0")
        out = subprocess.run(
            example("camera_stats.py", "--socket", broker.socket, "--frames", "30", "--check"),
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "30 frames" in out.stdout and ", 0 wrong pixels" in out.stdout
    finally:
        cam.kill()
        cam.wait()


def luma_of_pattern(seq, width, height):
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    rgb = np.stack(np.broadcast_arrays((x + seq * 8) & 0xFF, (y + seq * 4) & 0xFF, (x ^ y) & 0xFF),
                   axis=-1)
    return ((rgb @ np.array([299, 587, 114], dtype=np.uint32)) // 1000).astype(np.uint8)


def test_the_worker_publishes_each_frames_luma(broker):
    cam = camera(broker)
    try:
        wait_for_topic(broker, "camera/0")
        worker = subprocess.Popen(
            example("worker.py", "--socket", broker.socket, "--frames", "200"),
            stdout=subprocess.PIPE, text=True,
        )
        results = wait_for_topic(broker, "camera/0/gray")
        candidates = {s: luma_of_pattern(s, 64, 48) for s in range(1, 2001)}
        checked = 0
        while checked < 10:
            event = results.receive(timeout=10)
            assert isinstance(event, shmfd.Frame), event
            with event as frame:
                gray = frame.array
                assert gray.shape == (48, 64) and gray.dtype == np.uint8
                # The luma of some camera frame, every pixel of it.
                assert any(np.array_equal(gray, c) for c in candidates.values())
            checked += 1
        assert worker.wait(timeout=60) == 0
    finally:
        cam.kill()
        cam.wait()
