"""Two brokers and two shmfd-dds-bridges on one machine and one DDS domain, over loopback
unicast (no multicast), with Python producers and consumers that check every byte."""
import os
import random
import subprocess
import time

import numpy as np
import pytest

import shmfd
from shmfd_broker import Broker, binary

BRIDGE = binary("SHMFD_BRIDGE_BIN")

# Cyclone DDS on the loopback interface only, unicast discovery of the participants on it.
LOOPBACK = (
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery>"
    "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>60</MaxAutoParticipantIndex>"
    "<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery></Domain></CycloneDDS>"
)


@pytest.fixture
def net():
    """Two brokers (two "machines") and a DDS domain of this test's own."""
    a, b = Broker(), Broker()
    a.start()
    b.start()
    env = dict(os.environ, CYCLONEDDS_URI=LOOPBACK)
    domain = random.randrange(1, 200)
    bridges = []

    def bridge(broker, *args):
        p = subprocess.Popen([BRIDGE, "--socket", broker.socket, "--domain", str(domain),
                              "--stats", "0", *args],
                             stderr=subprocess.PIPE, text=True, env=env)
        wanted = sum(1 for x in args if x.startswith(("--export", "--import")))
        seen = 0
        while seen < wanted:
            line = p.stderr.readline()
            assert line, "the bridge stopped: " + p.stderr.read()
            seen += "exporting" in line or "importing" in line
        bridges.append(p)
        return p

    yield type("Net", (), {"a": a, "b": b, "bridge": staticmethod(bridge), "domain": domain,
                           "env": env})
    for p in bridges:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)
    for x in (a, b):
        x.stop()
        x.dir.cleanup()


def finish(bridge):
    """Stops a bridge; its summary line's counts."""
    bridge.terminate()
    err = bridge.stderr.read()
    assert bridge.wait(timeout=10) == 0, err
    total = [line for line in err.splitlines() if ": total: " in line][-1]
    words = total.replace(",", "").replace(";", "").split()
    counts = {}
    for i, w in enumerate(words):
        if w in ("in", "out", "dropped", "bad") and words[i - 1].isdigit():
            counts[w] = int(words[i - 1])
    counts["in"] = int(words[words.index("samples") - 1])
    return counts


def consumer(broker, topic, depth=8):
    c = shmfd.Consumer(broker.socket, "far-side")
    c.subscribe(topic, depth=depth, backpressure="block-producer")
    return c


def wait_for_route(net, producer_broker, topic, consumer_broker):
    """Until a frame published on one side arrives on the other (DDS discovery takes a moment)."""
    probe_p = shmfd.Producer(producer_broker.socket, "route-probe")
    probe_p.advertise(topic + "/route", "blob")
    probe_c = shmfd.Consumer(consumer_broker.socket, "route-probe")
    probe_c.subscribe(topic + "/route")
    for _ in range(100):
        probe_p.publish_bytes(topic + "/route", b"x" * 8, shmfd.Layout.blob(8))
        event = probe_c.receive(timeout=0.1)
        if isinstance(event, shmfd.Frame):
            return
    pytest.fail("no route through DDS")


LAYOUTS = {
    "rgba": (shmfd.Layout.image("rgba8", 64, 48), "image"),
    "nv12": (shmfd.Layout.image("nv12", 64, 48), "image"),
    "audio": (shmfd.Layout.audio("s16", 48000, 2, 480), "audio"),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_frames_cross_from_broker_a_to_broker_b_intact(net, name):
    layout, kind = LAYOUTS[name]
    exporter = net.bridge(net.a, "--export", "cam", "--export", "cam/route", "--block")
    importer = net.bridge(net.b, "--import", "cam", "--import", "cam/route", "--block")
    wait_for_route(net, net.a, "cam", net.b)
    far = consumer(net.b, "cam")
    producer = shmfd.Producer(net.a.socket, "near-side")
    producer.advertise("cam", kind)
    rng = np.random.default_rng(7)
    sent = []
    for i in range(40):
        data = rng.integers(0, 256, layout.extent, dtype=np.uint8).tobytes()
        producer.publish_bytes("cam", data, layout, timestamp_ns=1_000_000 + i)
        sent.append(data)
    got = []
    while len(got) < len(sent):
        event = far.receive(timeout=10)
        assert isinstance(event, shmfd.Frame), f"after {len(got)} frames: {event!r}"
        with event as frame:
            assert frame.layout == layout
            assert frame.timestamp_ns == 1_000_000 + len(got)
            got.append(frame.bytes[:layout.extent].tobytes())
    assert got == sent
    # shmfdctl shows each bridge as a client of its broker.
    clients = subprocess.run([binary("SHMFDCTL_BIN"), "--socket", net.a.socket, "--json",
                              "clients"], capture_output=True, text=True, check=True).stdout
    assert "shmfd-dds-bridge" in clients
    assert finish(exporter)["bad"] == 0
    counts = finish(importer)
    assert counts["bad"] == 0 and counts["dropped"] == 0


def test_the_reverse_direction_and_two_bridges_on_one_topic_loop_nothing(net):
    # Bridge A exports 'up' and imports 'down'; bridge B the other way round. Each topic
    # crosses once: a frame never comes back to the broker it left.
    a = net.bridge(net.a, "--export", "up", "--import", "down", "--export", "up/route", "--block")
    b = net.bridge(net.b, "--import", "up", "--export", "down", "--import", "up/route", "--block")
    wait_for_route(net, net.a, "up", net.b)
    far_b = consumer(net.b, "up")
    far_a = consumer(net.a, "down")
    pa = shmfd.Producer(net.a.socket, "pa")
    pa.advertise("up", "blob")
    pb = shmfd.Producer(net.b.socket, "pb")
    pb.advertise("down", "blob")
    time.sleep(1.0)  # 'down' discovery, the other way
    for i in range(20):
        pa.publish_bytes("up", bytes([i]) * 100, shmfd.Layout.blob(100))
        pb.publish_bytes("down", bytes([100 + i]) * 100, shmfd.Layout.blob(100))
    for c, base in ((far_b, 0), (far_a, 100)):
        seen = []
        while len(seen) < 20:
            event = c.receive(timeout=10)
            assert isinstance(event, shmfd.Frame), f"after {len(seen)}: {event!r}"
            with event as f:
                seen.append(int(f.bytes[0]))
        assert seen == [base + i for i in range(20)]
        assert c.receive(timeout=0.5) is None  # and nothing more: no echo
    ca, cb = finish(a), finish(b)
    # Each bridge read 21 local frames ('route' probes included) and wrote them once.
    assert ca["out"] == ca["in"] and cb["out"] == cb["in"]


def test_a_bridge_refuses_to_export_and_import_one_topic():
    out = subprocess.run([BRIDGE, "--export", "t", "--import", "t"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "topic 't' is both exported and imported: it would loop" in out.stderr


def test_frame_metadata_and_topic_options_cross(net):
    exporter = net.bridge(net.a, "--export", "meta", "--export", "meta/route", "--block")
    importer = net.bridge(net.b, "--import", "meta", "--import", "meta/route", "--block")
    wait_for_route(net, net.a, "meta", net.b)
    far = consumer(net.b, "meta")
    producer = shmfd.Producer(net.a.socket, "near-side")
    producer.advertise("meta", "image", max_header_bytes=32, header_schema="test.Boxes/2",
                       frame_rate=(25, 1))
    layout = shmfd.Layout.image("gray8", 16, 8)
    for i in range(5):
        producer.publish_bytes("meta", bytes(layout.extent), layout, pts=40_000_000 * i,
                               dts=40_000_000 * i - 1 if i else None, duration=40_000_000,
                               flags=shmfd.FLAG_MARKER if i % 2 else 0, crop=(2, 1, 12, 6),
                               header=bytes([i]) * (i + 1))
    producer.publish_bytes("meta", bytes(layout.extent), layout)  # and one without any
    for i in range(5):
        event = far.receive(timeout=10)
        assert isinstance(event, shmfd.Frame), f"after {i} frames: {event!r}"
        with event as f:
            assert f.pts == 40_000_000 * i
            assert f.dts == (40_000_000 * i - 1 if i else None)
            assert f.duration == 40_000_000
            assert f.flags == (shmfd.FLAG_MARKER if i % 2 else 0)
            assert f.crop == (2, 1, 12, 6)
            assert bytes(f.header) == bytes([i]) * (i + 1)
    with far.receive(timeout=10) as f:
        assert (f.pts, f.dts, f.duration, f.flags, f.crop) == (None, None, None, 0, None)
        assert bytes(f.header) == b""
    options = far.topic_options("meta")
    assert options == {"max_header_bytes": 32, "header_schema": "test.Boxes/2",
                       "frame_rate": (25, 1), "timestamps_required": False}, options
    assert finish(exporter)["bad"] == 0
    counts = finish(importer)
    assert counts["bad"] == 0 and counts["dropped"] == 0


def test_a_bridge_of_the_previous_sample_type_is_named_not_silently_missed(net):
    importer = net.bridge(net.b, "--import", "old")
    old = subprocess.run([binary("SHMFD_DDS_LIAR_BIN"), "--old", str(net.domain), "old"],
                         capture_output=True, text=True, env=net.env, timeout=60)
    assert old.returncode == 0, old.stderr
    importer.terminate()
    err = importer.stderr.read()
    assert importer.wait(timeout=10) == 0, err
    assert ("old: a bridge older than shmfd 0.4 exports to DDS topic 'shmfd/old' (sample type "
            "shmfd::bridge::Frame, without frame metadata); this bridge imports "
            "shmfd::bridge::Frame2 on 'shmfd2/old'") in err, err


def test_samples_whose_layout_lies_are_counted_and_dropped(net):
    importer = net.bridge(net.b, "--import", "lies", "--block")
    far = consumer(net.b, "lies")
    liar = subprocess.run([binary("SHMFD_DDS_LIAR_BIN"), str(net.domain), "lies", "10"],
                          capture_output=True, text=True, env=net.env, timeout=60)
    assert liar.returncode == 0, liar.stderr
    # Only the honest sample comes through, intact.
    event = far.receive(timeout=10)
    assert isinstance(event, shmfd.Frame), event
    with event as f:
        assert f.layout == shmfd.Layout.blob(64)
        assert f.bytes[:64].tobytes() == bytes([9]) * 64
    # Then the end: the liar, the topic's only writer, has gone.
    assert isinstance(far.receive(timeout=15), shmfd.EndOfStream)
    counts = finish(importer)
    assert counts["bad"] == 80 and counts["out"] == 1
    assert net.b.process.poll() is None  # the broker never saw the lies


def receive_frames_then_end(far, n):
    """n frames, then an EndOfStream, on a far-side consumer."""
    for i in range(n):
        event = far.receive(timeout=10)
        assert isinstance(event, shmfd.Frame), f"after {i} frames: {event!r}"
        event.release()
    event = far.receive(timeout=15)
    assert isinstance(event, shmfd.EndOfStream), f"after {n} frames, not the end: {event!r}"
    return event


def linked(net, topic):
    """A lossless bridge pair for `topic` from A to B, routed, and a consumer of it on B."""
    exporter = net.bridge(net.a, "--export", topic, "--export", topic + "/route", "--block")
    importer = net.bridge(net.b, "--import", topic, "--import", topic + "/route", "--block")
    wait_for_route(net, net.a, topic, net.b)
    return exporter, importer, consumer(net.b, topic)


def test_the_end_of_a_stream_crosses_when_its_producer_leaves_and_it_can_come_back(net):
    exporter, importer, far = linked(net, "eos")
    producer = shmfd.Producer(net.a.socket, "near")
    producer.advertise("eos", "blob")
    for _ in range(10):
        producer.publish_bytes("eos", bytes(64), shmfd.Layout.blob(64))
    time.sleep(0.2)  # the frames are out before the producer goes
    producer.unadvertise("eos")
    receive_frames_then_end(far, 10)
    # A producer that comes back on A revives the stream on B, for the same subscriber.
    again = shmfd.Producer(net.a.socket, "near-again")
    again.advertise("eos", "blob")
    for _ in range(5):
        again.publish_bytes("eos", bytes(64), shmfd.Layout.blob(64))
    time.sleep(0.2)
    again.unadvertise("eos")
    receive_frames_then_end(far, 5)
    finish(exporter)
    finish(importer)


def test_the_end_of_a_stream_crosses_when_the_exporting_bridge_stops(net):
    exporter, importer, far = linked(net, "stop")
    producer = shmfd.Producer(net.a.socket, "near")
    producer.advertise("stop", "blob")
    for _ in range(10):
        producer.publish_bytes("stop", bytes(64), shmfd.Layout.blob(64))
    time.sleep(0.2)
    finish(exporter)  # the producer stays; the bridge that exported it does not
    receive_frames_then_end(far, 10)
    finish(importer)


def test_a_killed_bridge_restarted_and_a_restarted_broker_lose_only_the_gap(net):
    exporter = net.bridge(net.a, "--export", "live", "--export", "live/route")
    importer = net.bridge(net.b, "--import", "live", "--import", "live/route")
    wait_for_route(net, net.a, "live", net.b)
    far = shmfd.Consumer(net.b.socket, "far", reconnect=True)
    far.subscribe("live", depth=8)
    producer = shmfd.Producer(net.a.socket, "near", reconnect=True)
    producer.advertise("live", "blob")
    received = []

    def pump(n):
        for i in range(n):
            producer.publish_bytes("live", b"%08d" % len(received) * 8, shmfd.Layout.blob(64))
            time.sleep(0.005)
            while (event := far.receive(timeout=0)) is not None:
                if isinstance(event, shmfd.Frame):
                    with event as f:
                        received.append(f.sequence)

    pump(50)
    assert len(received) > 0
    exporter.kill()
    exporter.wait()
    pump(20)
    exporter = net.bridge(net.a, "--export", "live")
    time.sleep(1.0)
    before = len(received)
    pump(50)
    assert len(received) > before, "nothing after the bridge restarted"
    net.b.stop()
    net.b.start()
    time.sleep(1.0)
    before = len(received)
    pump(100)
    assert len(received) > before, "nothing after broker B restarted"
    assert received == sorted(received)  # in order, no duplicates
    assert len(set(received)) == len(received)
    finish(exporter)
    finish(importer)


def test_a_slow_consumer_on_the_far_side_costs_the_near_side_nothing(net):
    exporter = net.bridge(net.a, "--export", "fast", "--export", "fast/route")
    importer = net.bridge(net.b, "--import", "fast", "--import", "fast/route")
    wait_for_route(net, net.a, "fast", net.b)
    slow = shmfd.Consumer(net.b.socket, "slow")
    slow.subscribe("fast", depth=2)  # drop-oldest, and never reads
    producer = shmfd.Producer(net.a.socket, "near")
    producer.advertise("fast", "blob")
    start = time.monotonic()
    for i in range(300):
        producer.publish_bytes("fast", bytes(4096), shmfd.Layout.blob(4096))
    assert time.monotonic() - start < 10
    time.sleep(0.5)
    got = 0
    while (event := slow.receive(timeout=0.2)) is not None:
        if isinstance(event, shmfd.Frame):
            last_dropped = event.dropped
            event.release()
            got += 1
    assert 0 < got < 300 and last_dropped > 0
    finish(exporter)
    finish(importer)


def test_images_exported_as_ros2_sensor_msgs_image_reach_a_ros2_reader(net, tmp_path):
    # Bridge A from a config file; bridge B reads rt/cam with ROS 2's own type and naming
    # (sensor_msgs::msg::dds_::Image_), as a ROS 2 node on rmw_cyclonedds would.
    config = tmp_path / "bridge.conf"
    config.write_text(f"# bridge A\nsocket {net.a.socket}\nexport-ros2 cam  # as a ROS 2 Image\n"
                      "export-ros2 cam/route\nblock\n")
    exporter = net.bridge(net.a, "--config", str(config))
    importer = net.bridge(net.b, "--import-ros2", "cam", "--import-ros2", "cam/route", "--block")
    producer = shmfd.Producer(net.a.socket, "camera")
    producer.advertise("cam", "image")
    producer.advertise("cam/route", "image")
    far_route = shmfd.Consumer(net.b.socket, "route")
    far_route.subscribe("cam/route")
    small = shmfd.Layout.image("gray8", 8, 8)
    for _ in range(100):
        producer.publish_bytes("cam/route", bytes(64), small)
        if isinstance(far_route.receive(timeout=0.1), shmfd.Frame):
            break
    else:
        pytest.fail("no route through DDS")
    far = consumer(net.b, "cam")
    sent = []
    for fmt, width in [("rgba8", 4), ("bgra8", 4), ("rgb24", 3), ("gray8", 1)]:
        layout = shmfd.Layout.image(fmt, 33, 20)
        data = bytes((i * 13 + width) & 0xFF for i in range(layout.extent))
        producer.publish_bytes("cam", data, layout)
        sent.append((fmt, data))
    # NV12 has no sensor_msgs encoding: counted, not sent.
    producer.publish_bytes("cam", bytes(shmfd.Layout.image("nv12", 32, 20).extent),
                           shmfd.Layout.image("nv12", 32, 20))
    for fmt, data in sent:
        event = far.receive(timeout=10)
        assert isinstance(event, shmfd.Frame), event
        with event as f:
            assert f.layout.format == fmt and (f.layout.width, f.layout.height) == (33, 20)
            assert f.bytes[:len(data)].tobytes() == data
    assert far.receive(timeout=0.5) is None
    assert finish(exporter)["bad"] == 1
    assert finish(importer)["bad"] == 0
