#!/usr/bin/env python3
"""A worker: receives RGBA frames, computes a result with numpy into a pool, publishes it.

    python3 examples/python/worker.py --input camera/0 --output camera/0/gray

Here the result is each frame's luma (BT.601, as GRAY8), written straight into a slot of the
worker's own pool: no copy of the input, one write of the output. Run it in a sandbox (no
network, a read-only file system): it needs nothing but the broker's socket.
"""
import argparse
import sys

import numpy as np

import shmfd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None)
    ap.add_argument("--input", default="camera/0")
    ap.add_argument("--output", default="camera/0/gray")
    ap.add_argument("--frames", type=int, default=0, help="stop after N frames (0: at the end)")
    args = ap.parse_args()

    consumer = shmfd.Consumer(args.socket, "worker")
    producer = shmfd.Producer(args.socket, "worker")
    producer.advertise(args.output, "image", guarantee="pool")
    consumer.subscribe(args.input, depth=2, backpressure="block-producer")
    weights = np.array([299, 587, 114], dtype=np.uint32)
    pool = layout = None
    done = 0
    for event in consumer:
        if isinstance(event, shmfd.EndOfStream):
            break
        if not isinstance(event, shmfd.Frame):
            continue
        with event as frame:
            rgba = frame.array
            if layout is None or (layout.width, layout.height) != (rgba.shape[1], rgba.shape[0]):
                layout = shmfd.Layout.image("gray8", rgba.shape[1], rgba.shape[0])
                pool = producer.create_pool(args.output, layout.extent, 4)
            with producer.acquire(pool, layout) as slot:
                np.floor_divide(rgba[..., :3] @ weights, 1000, out=slot.array, casting="unsafe")
                producer.publish(args.output, slot, timestamp_ns=frame.timestamp_ns)
        done += 1
        if args.frames and done >= args.frames:
            break
    print(f"worker: {done} frames from '{args.input}' to '{args.output}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
