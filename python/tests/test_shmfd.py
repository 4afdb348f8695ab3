"""The Python package against a real broker: interop with the C++ programs, every layout kind
as the right array, zero copy, read-only frames, release on `with` and on GC, errors as the
right exceptions, asyncio, and no fd or mapping left after 10 000 frames."""
import asyncio
import errno
import gc
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import shmfd

# shmfd-pub's test pattern, as the statistics example computes it.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
from camera_stats import rgba_pattern as pattern  # noqa: E402



def frames_of(consumer, n, timeout=10):
    out = []
    while len(out) < n:
        event = consumer.receive(timeout=timeout)
        assert event is not None, f"only {len(out)} of {n} frames came"
        assert isinstance(event, shmfd.Frame), event
        out.append(event)
    return out


def wait_until(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "sealed"])
def test_frames_of_the_cpp_publisher_arrive_bit_exact(broker, pub_bin, pool):
    consumer = shmfd.Consumer(broker.socket, "py-sub")
    extra = ["--pool", "4"] if pool else []
    # 100 frames at 200 fps: the consumer, which subscribes once the topic is advertised, sees
    # most of them however late it comes.
    publisher = subprocess.Popen(
        [pub_bin, "--socket", broker.socket, "--topic", "interop", "--frames", "100",
         "--fps", "200", "--width", "97", "--height", "33", *extra],
        stdout=subprocess.DEVNULL,
    )
    assert wait_until(lambda: _subscribe_when_advertised(consumer, "interop"))
    sequences = []
    while True:
        event = consumer.receive(timeout=10)
        if isinstance(event, shmfd.EndOfStream):
            assert event.topic == "interop"
            break
        with event as frame:  # released at once: the pool has 4 slots
            assert isinstance(frame, shmfd.Frame)
            assert frame.in_pool == pool
            assert frame.layout.kind == "image" and frame.layout.format == "rgba8"
            assert frame.array.shape == (33, 97, 4) and frame.array.dtype == np.uint8
            np.testing.assert_array_equal(frame.array, pattern(frame.sequence, 97, 33))
            sequences.append(frame.sequence)
    assert publisher.wait(timeout=10) == 0
    assert len(sequences) >= 20
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


def _subscribe_when_advertised(consumer, topic):
    try:
        consumer.subscribe(topic, depth=32, backpressure="block-producer")
        return True
    except shmfd.BrokerRefusedError as e:
        assert e.broker_error == "unknown-topic"
        return False


def test_the_cpp_subscriber_checks_every_pixel_of_python_frames(broker, sub_bin):
    producer = shmfd.Producer(broker.socket, "py-pub")
    producer.advertise("to-cpp", "image", guarantee="pool")
    layout = shmfd.Layout.image("rgba8", 120, 70, row_alignment=64)
    pool = producer.create_pool("to-cpp", layout.extent, 4)
    sub = subprocess.Popen(
        [sub_bin, "--socket", broker.socket, "--topic", "to-cpp", "--frames", "30", "--block",
         "--check-pattern"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in sub.stdout:  # shmfd-sub says when it has subscribed
        if "subscribed" in line:
            break
    for _ in range(30):
        with producer.acquire(pool, layout) as slot:
            assert slot.array.shape == (70, 120, 4)
            assert slot.array.strides == (128 * 4, 4, 1)
            # The sequence publish() will give: the slot is written before it is known.
            seq = _next_sequence(producer)
            slot.array[...] = pattern(seq, 120, 70)
            assert producer.publish("to-cpp", slot) == seq
    out, _ = sub.communicate(timeout=20)
    assert sub.returncode == 0, out


def _next_sequence(producer, _counter={}):
    _counter[id(producer)] = _counter.get(id(producer), 0) + 1
    return _counter[id(producer)]


def _roundtrip(broker, kind, layout, fill):
    """Publishes one pool frame of `layout` written by `fill(slot)`, and receives it."""
    producer = shmfd.Producer(broker.socket, "py-kinds")
    consumer = shmfd.Consumer(broker.socket, "py-kinds")
    producer.advertise("kinds", kind, guarantee="pool")
    consumer.subscribe("kinds", backpressure="block-producer")
    pool = producer.create_pool("kinds", layout.extent, 2)
    with producer.acquire(pool, layout) as slot:
        fill(slot)
        producer.publish("kinds", slot)
    (frame,) = frames_of(consumer, 1)
    assert frame.layout == layout
    return frame, producer, consumer


@pytest.mark.parametrize(
    "fmt,shape,dtype",
    [("rgba8", (37, 21, 4), np.uint8), ("bgra8", (37, 21, 4), np.uint8),
     ("rgb24", (37, 21, 3), np.uint8), ("yuyv", (37, 22, 2), np.uint8),
     ("gray8", (37, 21), np.uint8), ("gray16", (37, 21), np.uint16)],
)
def test_packed_images_are_height_width_channels(broker, fmt, shape, dtype):
    layout = shmfd.Layout.image(fmt, shape[1], 37, row_alignment=32)  # YUYV: an even width
    rng = np.random.default_rng(1)
    want = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)

    def fill(slot):
        slot.array[...] = want

    frame, *_ = _roundtrip(broker, "image", layout, fill)
    assert frame.array.shape == shape and frame.array.dtype == dtype
    assert frame.array.strides[0] == layout.planes[0][1]
    np.testing.assert_array_equal(frame.array, want)
    assert frame.planes[0].shape == shape


@pytest.mark.parametrize("fmt", ["nv12", "i420"])
def test_planar_images_are_one_array_per_plane(broker, fmt):
    layout = shmfd.Layout.image(fmt, 33, 19)
    y = np.arange(19 * 33, dtype=np.uint8).reshape(19, 33)
    chroma = (10, 17) if fmt == "i420" else (10, 17, 2)  # half height and width, rounded up

    def fill(slot):
        planes = slot.planes
        planes[0][...] = y
        for i, p in enumerate(planes[1:]):
            assert p.shape == chroma
            p[...] = 100 + i

    frame, *_ = _roundtrip(broker, "image", layout, fill)
    planes = frame.planes
    assert len(planes) == (3 if fmt == "i420" else 2)
    np.testing.assert_array_equal(planes[0], y)
    for i, p in enumerate(planes[1:]):
        assert p.shape == chroma and (p == 100 + i).all()
    with pytest.raises(ValueError, match="use frame.planes"):
        frame.array


@pytest.mark.parametrize("planar", [False, True], ids=["interleaved", "planar"])
def test_audio_is_frames_by_channels(broker, planar):
    layout = shmfd.Layout.audio("s16", 48000, 3, 480, planar=planar)
    want = (np.arange(480 * 3, dtype=np.int16).reshape(480, 3) * 7) - 3000

    def fill(slot):
        slot.array[...] = want

    frame, *_ = _roundtrip(broker, "audio", layout, fill)
    a = frame.array
    assert a.shape == (480, 3) and a.dtype == np.int16
    np.testing.assert_array_equal(a, want)
    raw = frame.bytes[: layout.extent].view(np.int16)
    # How the samples lie in memory: channel after channel, or interleaved.
    np.testing.assert_array_equal(raw, want.T.ravel() if planar else want.ravel())


def test_tensors_keep_dtype_shape_and_strides(broker):
    layout = shmfd.Layout.tensor("f32", [2, 3, 4])
    want = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)

    def fill(slot):
        slot.array[...] = want

    frame, *_ = _roundtrip(broker, "tensor", layout, fill)
    assert frame.array.dtype == np.float32 and frame.array.shape == (2, 3, 4)
    assert frame.array.strides == (48, 16, 4)
    np.testing.assert_array_equal(frame.array, want)
    assert frame.layout.shape == (2, 3, 4)


def test_a_blob_is_flat_bytes(broker):
    layout = shmfd.Layout.blob(1000)

    def fill(slot):
        slot.array[...] = np.arange(1000) % 251

    frame, *_ = _roundtrip(broker, "blob", layout, fill)
    assert frame.array.shape == (1000,) and frame.array.dtype == np.uint8
    np.testing.assert_array_equal(frame.array, np.arange(1000) % 251)


def test_arrays_are_the_mapped_pages_and_change_only_when_the_slot_is_written_again(broker):
    producer = shmfd.Producer(broker.socket, "py-zero-copy")
    consumer = shmfd.Consumer(broker.socket, "py-zero-copy")
    producer.advertise("zc", "blob", guarantee="pool")
    consumer.subscribe("zc", backpressure="block-producer")
    layout = shmfd.Layout.blob(4096)
    pool = producer.create_pool("zc", 4096, 2)

    def publish(value):
        with producer.acquire(pool, layout) as slot:
            slot.array[...] = value
            producer.publish("zc", slot)
            return slot.index

    first_slot = publish(1)
    (frame,) = frames_of(consumer, 1)
    array = frame.array
    address = array.__array_interface__["data"][0]
    assert frame.address <= address < frame.address + frame.size
    assert not array.flags.owndata
    with frame:
        pass  # released: the slot may be written again; the array stays mapped
    assert frame.released
    # The next frame goes in the other slot: the first one's bytes do not change.
    second_slot = publish(2)
    assert second_slot != first_slot
    (second,) = frames_of(consumer, 1)
    assert (array == 1).all()
    second.release()
    # Written again: the very bytes the old array shows change.
    assert publish(3) == first_slot
    assert (array == 3).all()


@pytest.mark.parametrize("channels", [True, False])
def test_latest_gets_the_newest_frame_and_the_end_counts_every_drop(broker, channels):
    """backpressure="latest": of the frames published while the consumer was away, it gets only
    the newest; the end of stream counts the rest (EndOfStream.dropped)."""
    consumer = shmfd.Consumer(broker.socket, "py-latest", pollable=not channels)
    assert consumer.subscribe("latest", depth=4, backpressure="latest") == 1
    producer = shmfd.Producer(broker.socket, "py-latest")
    producer.advertise("latest", "blob", guarantee="pool")
    layout = shmfd.Layout.blob(4096)
    pool = producer.create_pool("latest", 4096, 8)
    for value in range(1, 11):
        with producer.acquire(pool, layout) as slot:
            slot.array[...] = value
            producer.publish("latest", slot)
    del producer, slot  # it leaves: the end of stream follows its frames
    gc.collect()
    received = []
    while True:
        event = consumer.receive(timeout=10)
        assert event is not None, "no end of stream"
        if isinstance(event, shmfd.EndOfStream):
            break
        received.append(int(event.array[0]))
        event.release()
    # Through the broker, the first frame was on its way, and the broker kept the newest; on a
    # channel, frames the consumer did not read in time are skipped, and counted.
    assert received == sorted(received) and (channels or received[-1] == 10), received
    assert len(received) + event.dropped == 10, (received, event.dropped)
    with pytest.raises(ValueError, match="'latest'"):
        consumer.subscribe("other", backpressure="newest")


def test_a_consumers_arrays_are_read_only(broker):
    frame, *_ = _roundtrip(broker, "blob", shmfd.Layout.blob(64), lambda s: s.array.fill(9))
    a = frame.array
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1
    with pytest.raises(ValueError):
        a.setflags(write=True)
    assert not frame.bytes.flags.writeable
    assert (a == 9).all()


def test_frames_are_released_on_with_and_on_gc_and_arrays_keep_theirs(broker):
    producer = shmfd.Producer(broker.socket, "py-release")
    consumer = shmfd.Consumer(broker.socket, "py-release")
    producer.advertise("rel", "blob", guarantee="pool")
    consumer.subscribe("rel", depth=2, backpressure="block-producer")
    layout = shmfd.Layout.blob(100)
    pool = producer.create_pool("rel", 100, 3)

    def publish():
        with producer.acquire(pool, layout, block=False) as slot:
            producer.publish("rel", slot)

    def can_acquire():
        try:
            producer.acquire(pool, block=False).discard()
            return True
        except shmfd.NoFreeSlotError:
            return False

    # The consumer holds two frames (its depth), this test keeps the third slot acquired: no
    # slot is free until the consumer lets one go.
    publish()
    publish()
    a, b = frames_of(consumer, 2)
    kept = [producer.acquire(pool, block=False)]
    assert not can_acquire()
    with a:
        pass
    assert wait_until(can_acquire)  # `with` released a
    kept.append(producer.acquire(pool, block=False))  # a's slot, taken again
    assert not can_acquire()
    array = b.array
    del b
    gc.collect()
    assert not wait_until(can_acquire, timeout=0.3)  # the array keeps its frame
    assert (array == 0).all()
    del array
    gc.collect()
    assert wait_until(can_acquire)  # frame and array gone: released
    for slot in kept:
        slot.discard()


def test_errors_are_the_right_exceptions(broker):
    with pytest.raises(shmfd.OSFailure) as e:
        shmfd.Consumer("/nonexistent/broker.sock")
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOENT
    assert "/nonexistent/broker.sock" in str(e.value)
    assert e.value.code == "system"

    first = shmfd.Producer(broker.socket, "first")
    first.advertise("taken", "blob")
    second = shmfd.Producer(broker.socket, "second")
    with pytest.raises(shmfd.BrokerRefusedError) as e:
        second.advertise("taken", "blob")
    assert e.value.broker_error == "topic-taken" and "taken" in str(e.value)
    assert isinstance(e.value, shmfd.Error)

    with pytest.raises(shmfd.InvalidArgumentError) as e:
        second.advertise("no spaces", "blob")
    assert e.value.code == "invalid_topic_name"
    with pytest.raises(ValueError, match="unknown pixel format 'rgbx'"):
        shmfd.Layout.image("rgbx", 10, 10)
    with pytest.raises(shmfd.LayoutError) as e:
        shmfd.Layout.image("rgba8", 0, 10)
    assert e.value.code == "layout_bad_dimensions"
    consumer = shmfd.Consumer(broker.socket, "errors")
    with pytest.raises(ValueError, match="pollable=True"):
        consumer.fileno()
    with pytest.raises(ValueError, match="'block-producer'"):
        consumer.subscribe("taken", backpressure="block")

    # A slot too small for the layout, and a slot used after publishing.
    first.advertise("small", "blob", guarantee="pool")
    pool = first.create_pool("small", 4096, 2)
    with pytest.raises(shmfd.LayoutError):
        first.acquire(pool, shmfd.Layout.blob(8192))
    slot = first.acquire(pool)
    first.publish("small", slot)
    with pytest.raises(ValueError, match="already published"):
        first.publish("small", slot)

    broker.stop()
    with pytest.raises(shmfd.DisconnectedError):
        for _ in range(100):
            consumer.receive(timeout=0.05)


def test_sealed_frames_copy_bytes_and_arrays(broker):
    producer = shmfd.Producer(broker.socket, "py-sealed")
    consumer = shmfd.Consumer(broker.socket, "py-sealed")
    producer.advertise("sealed", "tensor")
    consumer.subscribe("sealed", backpressure="block-producer")
    data = np.arange(12, dtype=np.float64).reshape(3, 4)
    producer.publish_bytes("sealed", data, shmfd.Layout.tensor("f64", [3, 4]))
    # A layout larger than the bytes is refused before anything is sent.
    with pytest.raises(shmfd.LayoutError, match="96 bytes but the buffer holds 12"):
        producer.publish_bytes("sealed", b"not a tensor", shmfd.Layout.tensor("f64", [3, 4]))
    with pytest.raises(ValueError, match="C-contiguous"):
        producer.publish_bytes("sealed", data.T, shmfd.Layout.tensor("f64", [4, 3]))
    (frame,) = frames_of(consumer, 1)
    assert not frame.in_pool
    np.testing.assert_array_equal(frame.array, data)
    assert producer.poll_errors() == []


@pytest.mark.parametrize("pollable", [True, False], ids=["fileno", "thread"])
def test_async_for_receives_without_blocking_the_loop(broker, pollable):
    producer = shmfd.Producer(broker.socket, "py-async")
    consumer = shmfd.Consumer(broker.socket, "py-async", pollable=pollable)
    producer.advertise("aio", "blob", guarantee="pool")
    consumer.subscribe("aio", backpressure="block-producer")
    pool = producer.create_pool("aio", 64, 4)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        async def produce():
            for i in range(20):
                await asyncio.sleep(0.005)
                with producer.acquire(pool, shmfd.Layout.blob(64)) as slot:
                    slot.array[...] = i
                    producer.publish("aio", slot)

        tick = asyncio.create_task(ticker())
        make = asyncio.create_task(produce())
        got = []
        async for event in consumer:
            with event as frame:
                got.append(int(frame.array[0]))
            if len(got) == 20:
                break
        await make
        tick.cancel()
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got == list(range(20))
    assert ticks > 20  # the loop ran while the consumer waited


def test_nothing_leaks_after_10000_frames(broker):
    producer = shmfd.Producer(broker.socket, "py-leaks")
    consumer = shmfd.Consumer(broker.socket, "py-leaks")
    producer.advertise("leak", "image", guarantee="pool")
    producer.advertise("leak-sealed", "blob")
    consumer.subscribe("leak", depth=4, backpressure="block-producer")
    consumer.subscribe("leak-sealed", depth=4, backpressure="block-producer")
    layout = shmfd.Layout.image("gray8", 64, 64)
    pool = producer.create_pool("leak", layout.extent, 4)

    def run(frames):
        # Pool frames come on a channel and sealed ones through the broker: in any order.
        for i in range(frames):
            with producer.acquire(pool, layout) as slot:
                slot.array[0, 0] = i & 0xFF
                producer.publish("leak", slot)
            want = {"leak": i & 0xFF}
            if i % 20 == 0:
                producer.publish_bytes("leak-sealed", bytes([i & 0xFF]) * 100)
                want["leak-sealed"] = i & 0xFF
            while want:
                with consumer.receive(timeout=10) as frame:
                    assert frame.array.flat[0] == want.pop(frame.topic)

    run(100)  # warm-up: what the first frames set up for good
    gc.collect()
    fds, maps = open_fds(), mappings()
    run(10000)
    gc.collect()
    assert open_fds() == fds
    assert mappings() == maps


def test_help_documents_the_api():
    assert "subscribe" in shmfd.Consumer.__doc__
    assert "pollable" in shmfd.Consumer.__doc__
    assert "publish" in shmfd.Producer.__doc__
    assert "timeout" in shmfd.Consumer.receive.__doc__
    assert shmfd.PROTOCOL_VERSION >= 3


def test_import_without_numpy_says_what_is_missing():
    # A Python without numpy fails at `import shmfd`, naming numpy and how to get it, not later
    # at the first frame.array. numpy is hidden from a child interpreter.
    code = "import sys; sys.modules['numpy'] = None; import shmfd"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ, timeout=60)
    assert run.returncode != 0
    assert "ImportError: shmfd needs numpy" in run.stderr, run.stderr
    assert "python3-numpy" in run.stderr, run.stderr


def channel_frames(broker, topic):
    """The topic's frames that went on channels only (shmfdctl topics)."""
    import json
    out = subprocess.run([os.environ["SHMFDCTL_BIN"], "--socket", broker.socket, "--json",
                          "topics"], capture_output=True, text=True, check=True).stdout
    return next(t["channel_frames"] for t in json.loads(out) if t["name"] == topic)


@pytest.mark.parametrize("path", ["sealed", "pool", "channel"])
def test_frame_metadata_round_trips(broker, path, monkeypatch):
    if path != "channel":
        monkeypatch.setenv("SHMFD_CHANNELS", "0")
    consumer = shmfd.Consumer(broker.socket, "py-meta-in")
    consumer.subscribe("meta", depth=4, backpressure="block-producer")
    producer = shmfd.Producer(broker.socket, "py-meta-out")
    producer.advertise("meta", "image", "sealed" if path == "sealed" else "pool",
                       max_header_bytes=16, header_schema="py.Test/1", frame_rate=(30, 1))
    layout = shmfd.Layout.image("rgba8", 32, 16)
    p = producer.create_pool("meta", layout.extent, slots=4) if path != "sealed" else None
    # On channels the first frames go through the broker while the channel opens (both sides
    # read their sockets for it): frames go until the last few have gone on the channel.
    frames = 20 if path == "channel" else 1
    for i in range(frames):
        meta = dict(pts=1_000 + i, dts=900, duration=33_333_333,
                    flags=shmfd.FLAG_DELTA_UNIT | shmfd.FLAG_MARKER, crop=(1, 2, 30, 14),
                    header=bytes([1, 2, 3, i]))
        if p is not None:
            with producer.acquire(p, layout) as slot:
                producer.publish("meta", slot, **meta)
        else:
            producer.publish_bytes("meta", np.zeros(layout.extent, np.uint8), layout, **meta)
        with consumer.receive(timeout=10) as frame:
            assert (frame.pts, frame.dts, frame.duration) == (1_000 + i, 900, 33_333_333)
            assert frame.flags == shmfd.FLAG_DELTA_UNIT | shmfd.FLAG_MARKER
            assert frame.crop == (1, 2, 30, 14)
            assert frame.header.readonly and bytes(frame.header) == bytes([1, 2, 3, i])
    if path == "channel":
        assert channel_frames(broker, "meta") > 0, "no frame went on a channel"
    with pytest.raises(shmfd.InvalidArgumentError, match="outside the 32x16 image"):
        producer.publish_bytes("meta", np.zeros(layout.extent, np.uint8), layout,
                               crop=(0, 0, 33, 1))
