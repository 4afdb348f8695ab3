#!/usr/bin/env python3
"""Per-frame statistics with numpy on shmfd-camera's frames, without copying them.

    shmfd-camera --frames 300 &   # topic camera/0, RGBA or NV12
    python3 examples/python/camera_stats.py --frames 100 --check

Each frame is a read-only numpy array over the camera's own pages: the statistics read them
in place. --check compares every pixel with the camera's test pattern.
"""
import argparse
import sys
import time

import numpy as np

import shmfd


def rgba_pattern(seq, width, height):
    """The test pattern of shmfd-camera and shmfd-pub (programs/common/test_pattern.hpp)."""
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    out = np.empty((height, width, 4), dtype=np.uint8)
    out[..., 0] = (x + seq * 8) & 0xFF
    out[..., 1] = (y + seq * 4) & 0xFF
    out[..., 2] = (x ^ y) & 0xFF
    out[..., 3] = 0xFF
    return out


def nv12_luma_pattern(seq, width, height):
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    return ((x + y + seq * 4) & 0xFF).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None, help="the broker's socket (default: its default)")
    ap.add_argument("--topic", default="camera/0")
    ap.add_argument("--frames", type=int, default=0, help="stop after N frames (0: at the end)")
    ap.add_argument("--check", action="store_true", help="check every pixel against the pattern")
    args = ap.parse_args()

    consumer = shmfd.Consumer(args.socket, "camera-stats")
    consumer.subscribe(args.topic, depth=4)
    seen = wrong = 0
    started = time.monotonic()
    for event in consumer:
        if isinstance(event, shmfd.EndOfStream):
            print(f"camera-stats: end of stream ({event.reason})")
            break
        if not isinstance(event, shmfd.Frame):
            continue
        with event as frame:
            layout = frame.layout
            if layout.format == "nv12":
                y, uv = frame.planes
                stats = f"luma mean {y.mean():6.2f}, chroma mean {uv.mean():6.2f}"
                if args.check:
                    wrong += int(np.count_nonzero(y != nv12_luma_pattern(frame.sequence, *y.shape[::-1])))
            else:
                rgba = frame.array  # (height, width, 4)
                means = rgba[..., :3].reshape(-1, 3).mean(axis=0)
                stats = "RGB means " + " ".join(f"{m:6.2f}" for m in means)
                if args.check:
                    want = rgba_pattern(frame.sequence, layout.width, layout.height)
                    wrong += int(np.count_nonzero((rgba != want).any(axis=2)))
            seen += 1
            if seen <= 3 or seen % 30 == 0:
                print(f"frame {frame.sequence}: {layout!r}, {stats}, dropped {frame.dropped}")
        if args.frames and seen >= args.frames:
            break
    elapsed = time.monotonic() - started
    print(f"camera-stats: {seen} frames in {elapsed:.2f} s" + (f", {wrong} wrong pixels" if args.check else ""))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
