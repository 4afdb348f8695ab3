"""The README's Python samples, run as written against a broker of this test's own: the
consumer against a camera that sends three frames and leaves, the producer into a consumer
that checks the frame it painted."""
import contextlib
import functools
import io
import os
import re
import threading
import time

import shmfd

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_python():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_the_readme_shows_a_python_consumer_and_producer():
    consumer_src, producer_src = readme_python()
    assert "shmfd.Consumer(" in consumer_src and "shmfd.Producer(" in producer_src


def test_the_readmes_python_samples_run(broker, monkeypatch):
    consumer_src, producer_src = readme_python()
    real_consumer, real_producer = shmfd.Consumer, shmfd.Producer
    # The samples use the default socket; this test's broker has a socket of its own.
    monkeypatch.setattr(shmfd, "Consumer", functools.partial(real_consumer, broker.socket))
    monkeypatch.setattr(shmfd, "Producer", functools.partial(real_producer, broker.socket))

    out = io.StringIO()
    failed = []

    def consume():
        try:
            exec(consumer_src, {})
        except BaseException as e:  # reported below, on the test's thread
            failed.append(e)

    camera = real_producer(broker.socket, "camera")
    camera.advertise("camera/0", "image")
    layout = shmfd.Layout.image("rgba8", 64, 48)
    with contextlib.redirect_stdout(out):
        thread = threading.Thread(target=consume, daemon=True)  # never outlives a failure
        thread.start()
        deadline = time.monotonic() + 20
        # Frames until the sample has printed three lines (it may subscribe after the first).
        while out.getvalue().count("\n") < 3 and time.monotonic() < deadline and not failed:
            camera.publish_bytes("camera/0", bytes([100]) * layout.extent, layout)
            time.sleep(0.05)
        camera.unadvertise("camera/0")  # its EndOfStream ends the sample's loop
        thread.join(timeout=20)
    assert not failed, failed
    assert not thread.is_alive(), "the consumer sample did not end at the end of the stream"
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, out.getvalue()
    sequence, mean = lines[0].split(" ", 1)
    assert int(sequence) >= 1 and "100." in mean, lines[0]  # the three channels' means

    check = real_consumer(broker.socket, "check")
    check.subscribe("art", depth=4, backpressure="block-producer")
    exec(producer_src, {})
    event = check.receive(timeout=10)
    assert isinstance(event, shmfd.Frame), event
    with event as frame:
        assert frame.array.shape == (480, 640, 4)
        assert (frame.array[..., 0] == 255).all()
