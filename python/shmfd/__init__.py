"""shmfd: zero-copy frames between processes, verified by shmfd-broker.

A consumer gets each frame as read-only numpy arrays that *are* the producer's pages; a
producer writes pool slots in place through writable arrays. Every buffer and layout is
verified (by the broker and by this library) before anyone reads it.

    import shmfd

    consumer = shmfd.Consumer(name="stats")
    consumer.subscribe("cam0")
    for event in consumer:                  # Frame, EndOfStream or Reconnected
        if isinstance(event, shmfd.EndOfStream):
            break
        with event as frame:                # released (the slot goes back) on exit
            print(frame.sequence, frame.array.mean())

    producer = shmfd.Producer(name="painter")
    producer.advertise("art", "image", guarantee="pool")
    layout = shmfd.Layout.image("rgba8", 640, 480)
    pool = producer.create_pool("art", layout.extent, slots=4)
    with producer.acquire(pool, layout) as slot:
        slot.array[..., 0] = 255            # (480, 640, 4), written in place
        producer.publish("art", slot)

asyncio: ``async for event in consumer`` waits without blocking the loop (on fileno() for a
consumer made with pollable=True, in a worker thread otherwise).
"""

import asyncio as _asyncio

try:
    import numpy as _numpy  # noqa: F401  (every frame is a numpy array: fail here, not later)
except ImportError as _missing:
    raise ImportError(
        "shmfd needs numpy, which this Python cannot import ("
        + str(_missing)
        + "): install it (Debian: apt install python3-numpy; pip: pip install numpy)"
    ) from _missing

from ._shmfd import (  # noqa: F401  (the public API)
    FLAG_CORRUPTED,
    FLAG_DELTA_UNIT,
    FLAG_DISCONTINUITY,
    FLAG_GAP,
    FLAG_MARKER,
    PROTOCOL_VERSION,
    BrokerRefusedError,
    CallFailedError,
    Caller,
    Cancel,
    Consumer,
    DisconnectedError,
    EndOfStream,
    Error,
    Frame,
    InvalidArgumentError,
    Layout,
    LayoutError,
    LimitExceededError,
    NoFreeSlotError,
    OSFailure,
    Producer,
    ProtocolError,
    Reconnected,
    Request,
    Response,
    Server,
    Slot,
    TransportError,
    VerificationError,
    default_socket_path,
)

__all__ = [
    "FLAG_CORRUPTED",
    "FLAG_DELTA_UNIT",
    "FLAG_DISCONTINUITY",
    "FLAG_GAP",
    "FLAG_MARKER",
    "PROTOCOL_VERSION",
    "BrokerRefusedError",
    "CallFailedError",
    "Caller",
    "Cancel",
    "Consumer",
    "DisconnectedError",
    "EndOfStream",
    "Error",
    "Frame",
    "InvalidArgumentError",
    "Layout",
    "LayoutError",
    "LimitExceededError",
    "NoFreeSlotError",
    "OSFailure",
    "Producer",
    "ProtocolError",
    "Reconnected",
    "Request",
    "Response",
    "Server",
    "Slot",
    "TransportError",
    "VerificationError",
    "default_socket_path",
]

# How long a worker thread waits for an event before it looks whether the loop still wants one.
_THREAD_WAIT_SECONDS = 0.25


async def _events(consumer):
    loop = _asyncio.get_running_loop()
    while True:
        event = consumer.receive(timeout=0)
        if event is not None:
            yield event
            continue
        if consumer.pollable:
            ready = loop.create_future()
            fd = consumer.fileno()

            def wake(ready=ready):
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(fd, wake)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        else:
            event = await loop.run_in_executor(None, consumer.receive, _THREAD_WAIT_SECONDS)
            if event is not None:
                yield event


def _aiter(self):
    """Events as an async iterator: ``async for event in consumer``."""
    return _events(self)


Consumer.__aiter__ = _aiter


# Services (protocol 6): blocking calls run in the loop's default executor, so a coroutine
# waits without blocking the loop; several may be in flight at once on one Caller.


async def _call_async(self, service, data=None, layout=None, *, deadline=None, wait=False):
    """Calls `service` as call() does, awaiting its response without blocking the loop."""
    loop = _asyncio.get_running_loop()
    call = await loop.run_in_executor(
        None, lambda: self.start(service, data, layout, deadline=deadline, wait=wait)
    )
    try:
        while True:
            response = await loop.run_in_executor(None, self.next, call, _THREAD_WAIT_SECONDS)
            if response is not None:
                break
    except _asyncio.CancelledError:
        self.cancel(call)  # the server is told; what was on its way is dropped
        raise
    if not response.last:
        self.cancel(call)  # a stream: its first response only
    return response


async def _server_events(server):
    loop = _asyncio.get_running_loop()
    while True:
        event = await loop.run_in_executor(None, server.receive, _THREAD_WAIT_SECONDS)
        if event is not None:
            yield event


def _server_aiter(self):
    """Requests and cancels as an async iterator: ``async for event in server``."""
    return _server_events(self)


Caller.call_async = _call_async
Server.__aiter__ = _server_aiter
