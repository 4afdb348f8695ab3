"""The installed Python package: a producer and a consumer in one process, N pool frames
through the broker, each checked. Prints where shmfd was imported from.
    python3 py_app.py SOCKET TOPIC N"""
import sys

import numpy as np

import shmfd

socket, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = shmfd.Producer(socket, "py-app")
consumer = shmfd.Consumer(socket, "py-app")
producer.advertise(topic, "image", guarantee="pool")
consumer.subscribe(topic, depth=2, backpressure="block-producer")
layout = shmfd.Layout.image("nv12", 160, 90)
pool = producer.create_pool(topic, layout.extent, 3)
for i in range(1, n + 1):
    with producer.acquire(pool, layout) as slot:
        for plane in slot.planes:
            plane[...] = i % 251
        producer.publish(topic, slot)
    with consumer.receive(timeout=10) as frame:
        if not all((p == i % 251).all() for p in frame.planes):
            sys.exit(f"py-app: frame {i} is wrong")
print(f"py-app: {n} frames, all intact, shmfd from {shmfd.__file__}")
