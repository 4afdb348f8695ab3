#!/usr/bin/env python3
"""A producer that draws frames with numpy straight into pool slots.

    python3 examples/python/painter.py --topic py/painter --frames 100 &
    shmfd-sub --topic py/painter --check-pattern

It draws shmfd-pub's moving test pattern, so shmfd-sub --check-pattern can verify every pixel.
"""
import argparse
import sys
import time

import numpy as np

import shmfd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None)
    ap.add_argument("--topic", default="py/painter")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=30, help="0: as fast as it may")
    ap.add_argument("--wait-subscriber", type=float, default=0,
                    help="seconds to wait before the first frame, for a subscriber to come")
    args = ap.parse_args()

    producer = shmfd.Producer(args.socket, "painter")
    producer.advertise(args.topic, "image", guarantee="pool")
    layout = shmfd.Layout.image("rgba8", args.width, args.height)
    pool = producer.create_pool(args.topic, layout.extent, 4)
    time.sleep(args.wait_subscriber)
    # What does not change from frame to frame is computed once.
    x = np.arange(args.width, dtype=np.uint32)[None, :]
    y = np.arange(args.height, dtype=np.uint32)[:, None]
    blue = ((x ^ y) & 0xFF).astype(np.uint8)
    period = 1 / args.fps if args.fps > 0 else 0
    next_tick = time.monotonic()
    for seq in range(1, args.frames + 1):
        with producer.acquire(pool, layout) as slot:
            rgba = slot.array  # (height, width, 4), writable, the slot itself
            rgba[..., 0] = (x + seq * 8) & 0xFF
            rgba[..., 1] = (y + seq * 4) & 0xFF
            rgba[..., 2] = blue
            rgba[..., 3] = 0xFF
            assert producer.publish(args.topic, slot) == seq
        if period:
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
    print(f"painter: {args.frames} frames on '{args.topic}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
