"""shmfd-bench-suite's S6 consumer in Python: receives N frames of TOPIC as numpy arrays, looks
at one byte of each and releases it, as the C++ consumer of S6 does. Prints "subscribed",
then its frame rate as JSON.
    python3 py_consumer.py SOCKET TOPIC N"""
import json
import sys
import time

import shmfd

socket, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = shmfd.Consumer(socket, "bench-python")
consumer.subscribe(topic, depth=2, backpressure="block-producer")
print("subscribed", flush=True)
sink = 0
first = last = 0
for i in range(n):
    with consumer.receive() as frame:
        sink += int(frame.array[0, 0, 0])
    last = time.monotonic_ns()
    if i == 0:
        first = last
print(json.dumps({"fps": (n - 1) * 1e9 / (last - first), "sink": sink}), flush=True)
