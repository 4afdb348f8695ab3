#!/usr/bin/env python3
"""DDS bridge bench: 1080p and 4K RGBA frames through two shmfd-dds-bridges over loopback DDS
(Cyclone DDS, unicast on lo, reliable: --block), against the local zero-copy path on one broker.
The producer publishes pool frames as fast as the path takes them (block-producer), stamping
each with its capture time; the consumer reads one byte a page and releases it. Reports
frames per second at the consumer and capture-to-receive latency (one machine, one clock),
medians of 3 runs.

  PYTHONPATH=build/python bench/suite/dds_bridge.py [BUILD_DIR]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import shmfd

build = sys.argv[1] if len(sys.argv) > 1 else "build"
BIN = os.path.join(build, "bin")
# Cyclone DDS as its documentation advises for large samples: 64 KB datagrams, socket buffers
# as large as the kernel allows (net.core.rmem_max, up to 64 MB: raise it for 4K frames), and a
# writer history that holds several frames. SHMFD_BENCH_CYCLONEDDS_URI replaces it all.
RMEM = min(int(open("/proc/sys/net/core/rmem_max").read()), 64 << 20)
WMEM = min(int(open("/proc/sys/net/core/wmem_max").read()), 16 << 20)
URI = os.environ.get("SHMFD_BENCH_CYCLONEDDS_URI") or (
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast><MaxMessageSize>65500B</MaxMessageSize></General>"
    "<Discovery><ParticipantIndex>auto</ParticipantIndex><Peers><Peer address=\"127.0.0.1\"/>"
    "</Peers></Discovery><Internal>"
    f"<SocketReceiveBufferSize min=\"{RMEM}B\"/><SocketSendBufferSize min=\"{WMEM}B\"/>"
    "<Watermarks><WhcHigh>128MB</WhcHigh></Watermarks></Internal></Domain></CycloneDDS>")
SIZES = [("1080p", 1920, 1080, 60), ("4K", 3840, 2160, 20)]


def broker(d, name):
    sock = os.path.join(d, name + ".sock")
    p = subprocess.Popen([os.path.join(BIN, "shmfd-broker"), "--socket", sock, "--log-level",
                          "error"], stderr=subprocess.DEVNULL)
    while not os.path.exists(sock):
        time.sleep(0.01)
    return p, sock


def bridge(sock, domain, *args):
    return subprocess.Popen([os.path.join(BIN, "shmfd-dds-bridge"), "--socket", sock, "--domain",
                             str(domain), "--stats", "0", "--block", *args],
                            stderr=subprocess.DEVNULL, env=dict(os.environ, CYCLONEDDS_URI=URI))


def run(produce_sock, consume_sock, topic, width, height, frames):
    layout = shmfd.Layout.image("rgba8", width, height)
    c = shmfd.Consumer(consume_sock, "bench-consumer")
    c.subscribe(topic, depth=4, backpressure="block-producer")
    arrivals, latency = [], []
    done = threading.Event()

    def consume():
        got = 0
        while got < frames:
            e = c.receive(timeout=30)
            if e is None:
                break
            if isinstance(e, shmfd.Frame):
                with e as f:
                    f.bytes[::4096].sum()
                    now = time.monotonic_ns()
                    arrivals.append(now)
                    latency.append((now - f.timestamp_ns) / 1e3)
                got += 1
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    p = shmfd.Producer(produce_sock, "bench-producer")
    p.advertise(topic, "image", guarantee="pool")
    pool = p.create_pool(topic, layout.extent, 8)
    time.sleep(1.0)  # the route through DDS
    for i in range(frames + 5):  # a few more: the first may arrive before discovery settles
        if done.is_set():
            break
        with p.acquire(pool, layout) as slot:
            slot.array[0, 0, 0] = i & 0xFF
            p.publish(topic, slot, layout, timestamp_ns=time.monotonic_ns())
    t.join(timeout=60)
    p.unadvertise(topic)
    fps = (len(arrivals) - 1) * 1e9 / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0
    return fps, statistics.median(latency) if latency else float("nan")


def main():
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    print(f"machine: {os.cpu_count()} × {model}; socket buffers {RMEM >> 20} MB receive, "
          f"{WMEM >> 20} MB send (net.core.rmem_max, wmem_max)")
    with tempfile.TemporaryDirectory() as d:
        (pa, a), (pb, b) = broker(d, "a"), broker(d, "b")
        domain = 100 + os.getpid() % 100
        ex = bridge(a, domain, *sum((["--export", f"bench/{n}"] for n, *_ in SIZES), []))
        im = bridge(b, domain, *sum((["--import", f"bench/{n}"] for n, *_ in SIZES), []))
        time.sleep(2)
        print("| frames | path | frames/s | latency, median |")
        print("| --- | --- | ---: | ---: |")
        for name, w, h, n in SIZES:
            for path, src, dst, topic in [
                    ("local, zero-copy (one broker)", a, a, f"local/{name}"),
                    ("two brokers through DDS on loopback", a, b, f"bench/{name}")]:
                runs = [run(src, dst, topic, w, h, n) for _ in range(3)]
                fps = statistics.median(r[0] for r in runs)
                lat = statistics.median(r[1] for r in runs)
                print(f"| {name} RGBA | {path} | {fps:.1f} | {lat / 1e3:.2f} ms |", flush=True)
        for p in (ex, im, pa, pb):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
