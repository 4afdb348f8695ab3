#!/usr/bin/env python3
"""How old are the frames a slow live consumer gets? (issue 32's table)

shmfd-pub publishes a 640x480 RGBA test pattern at --fps from a pool of --pool slots; a Python
consumer subscribes with each backpressure mode, works --work-ms on each frame (as a preview or an
inference step would), and measures each frame's age when it is received: now minus its capture
time, both CLOCK_MONOTONIC. Each mode runs on a channel and through the broker (the consumer
connected with pollable=True, which takes no channels). Prints the median and maximum age of
--frames frames per row.

  PYTHONPATH=build/python python3 bench/suite/freshness.py build/bin
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import shmfd


def measure(socket, policy, depth, channels, frames, work_s):
    consumer = shmfd.Consumer(socket, "freshness", pollable=not channels)
    consumer.subscribe("demo/camera", depth=depth, backpressure=policy)
    ages = []
    skipped = 3  # the first frames come before the consumer fell behind
    while len(ages) < frames:
        event = consumer.receive(timeout=10)
        if event is None or not isinstance(event, shmfd.Frame):
            raise SystemExit(f"freshness: no frame ({event!r})")
        age_ms = (time.monotonic_ns() - event.timestamp_ns) / 1e6
        if skipped:
            skipped -= 1
        else:
            ages.append(age_ms)
        time.sleep(work_s)  # holding the frame
        event.release()
    return statistics.median(ages), max(ages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin_dir")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--work-ms", type=float, default=100)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="shmfd-fresh-")
    socket = os.path.join(work, "broker.sock")
    broker = subprocess.Popen([os.path.join(args.bin_dir, "shmfd-broker"), "--socket", socket,
                               "--log-level", "warn"])
    for _ in range(200):
        if os.path.exists(socket):
            break
        time.sleep(0.01)
    pub = subprocess.Popen([os.path.join(args.bin_dir, "shmfd-pub"), "--socket", socket,
                            "--fps", str(args.fps), "--pool", str(args.pool), "--width", "640",
                            "--height", "480"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        print(f"shmfd-pub --fps {args.fps} --pool {args.pool}, 640x480; the consumer works "
              f"{args.work_ms:g} ms a frame; age at receive over {args.frames} frames")
        print(f"{'mode':<22} {'path':<8} {'median':>8} {'max':>8}")
        for policy, depth in (("drop-oldest", 4), ("latest", 1), ("drop-oldest", 1)):
            for channels in (True, False):
                mode = f"{policy} depth {depth}" if policy != "latest" else "latest"
                path = "channel" if channels else "broker"
                try:
                    median, worst = measure(socket, policy, depth, channels, args.frames,
                                            args.work_ms / 1000)
                except ValueError:  # a library before the mode existed
                    print(f"{mode:<22} {path:<8} {'n/a':>8} {'n/a':>8}", flush=True)
                    continue
                print(f"{mode:<22} {path:<8} {median:>6.0f} ms {worst:>5.0f} ms", flush=True)
    finally:
        pub.terminate()
        pub.wait()
        broker.terminate()
        broker.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
