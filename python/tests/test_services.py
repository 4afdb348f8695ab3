"""Services from Python (protocol 6): a frame each way with a server in a thread, a stream,
every failure as CallFailedError with its call_error, cancels at the server, asyncio on both
sides, and no fd or mapping left after a thousand calls."""
import asyncio
import os
import threading

import numpy as np
import pytest

import shmfd


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def serve(server, count, answer):
    """Answers `count` requests in a thread with answer(server, request)."""

    def run():
        done = 0
        while done < count:
            event = server.receive(timeout=10)
            assert event is not None, "no request within 10 s"
            if isinstance(event, shmfd.Request):
                answer(server, event)
                done += 1

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_call_carries_an_array_each_way_mapped_read_only(broker):
    server = shmfd.Server(broker.socket, "py-worker")
    assert server.offer("py/invert", max_in_flight=1) == 1
    caller = shmfd.Caller(broker.socket, "py-app")
    layout = shmfd.Layout.image("gray8", 64, 48)
    image = np.arange(64 * 48, dtype=np.uint8).reshape(48, 64)

    def invert(server, request):
        pixels = request.frame.array
        assert not pixels.flags.writeable
        server.respond(request, 255 - pixels, request.frame.layout)

    worker = serve(server, 1, invert)
    response = caller.call("py/invert", image, layout, deadline=5)
    worker.join()
    assert response.last
    assert response.frame.layout == layout
    assert not response.frame.array.flags.writeable
    assert np.array_equal(response.frame.array, 255 - image)


def test_requests_and_responses_in_pool_slots_are_read_in_place(broker):
    server = shmfd.Server(broker.socket, "py-pool-worker")
    server.offer("py/pooled", max_in_flight=1)
    caller = shmfd.Caller(broker.socket, "py-pool-app")
    layout = shmfd.Layout.image("gray8", 64, 48)
    requests = caller.create_pool(layout.extent, 1)
    responses = server.create_pool(layout.extent, 1)

    def invert(server, request):
        assert request.frame.in_pool
        assert not request.frame.array.flags.writeable
        with server.acquire(responses, layout) as out:
            out.array[...] = 255 - request.frame.array
            server.respond(request, out)

    for round in range(3):
        image = np.full((48, 64), 10 + round, dtype=np.uint8)
        slot = caller.acquire(requests, layout)
        pixels = slot.array
        pixels[...] = image
        worker = serve(server, 1, invert)
        response = caller.call("py/pooled", slot, deadline=5)
        worker.join()
        # Sent: the slot is the broker's and the server's now, not this caller's to write.
        assert not pixels.flags.writeable
        with pytest.raises(ValueError, match="already published or sent"):
            caller.call("py/pooled", slot)
        assert response.frame.in_pool
        assert np.array_equal(response.frame.array, 255 - image)
        # The caller reads the server's only slot until it drops the response.
        with pytest.raises(shmfd.NoFreeSlotError):
            server.acquire(responses, block=False)
        del response
    # A slot of another client's pool is refused, naming it.
    slot = caller.acquire(requests)
    other = shmfd.Caller(broker.socket, "py-other")
    with pytest.raises(ValueError, match="another client's pool"):
        other.call("py/pooled", slot)
    slot.discard()


def test_every_failure_is_a_call_failed_error_naming_it(broker):
    caller = shmfd.Caller(broker.socket, "py-app")
    with pytest.raises(shmfd.CallFailedError) as nobody:
        caller.call("py/nobody")
    assert nobody.value.call_error == "no-server"
    assert nobody.value.code == "call_failed"
    assert "'py/nobody'" in str(nobody.value)

    server = shmfd.Server(broker.socket, "py-worker")
    server.offer("py/strict")
    worker = serve(server, 1, lambda s, r: s.respond_error(r, "kernel size 0 is not odd"))
    with pytest.raises(shmfd.CallFailedError) as refused:
        caller.call("py/strict", b"\0" * 16)
    worker.join()
    assert refused.value.call_error == "server-error"
    assert "kernel size 0 is not odd" in str(refused.value)

    # A server that never answers: the deadline, and a Cancel at the server.
    with pytest.raises(shmfd.CallFailedError) as late:
        caller.call("py/strict", deadline=0.05)
    assert late.value.call_error == "deadline"
    request = server.receive(timeout=5)
    assert isinstance(request, shmfd.Request)
    cancel = server.receive(timeout=5)
    assert isinstance(cancel, shmfd.Cancel)
    assert (cancel.id, cancel.reason) == (request.id, "deadline")
    server.respond(request)  # over: dropped by the broker, not an error

    with pytest.raises(shmfd.InvalidArgumentError):
        caller.call("bad name")


def test_a_stream_and_a_cancel(broker):
    server = shmfd.Server(broker.socket, "py-worker")
    server.offer("py/count")
    caller = shmfd.Caller(broker.socket, "py-app")
    call = caller.start("py/count", deadline=5)
    request = server.receive(timeout=5)
    for i in range(3):
        server.respond(request, np.full(8, i, dtype=np.uint8), last=False)
    server.respond(request)
    parts = [caller.next(call, timeout=5) for _ in range(4)]
    assert [p.last for p in parts] == [False, False, False, True]
    assert [int(p.frame.array[0]) for p in parts[:3]] == [0, 1, 2]
    assert parts[3].frame is None
    assert caller.in_flight == 0

    call = caller.start("py/count")
    request = server.receive(timeout=5)
    caller.cancel(call)
    cancel = server.receive(timeout=5)
    assert (cancel.id, cancel.reason) == (request.id, "cancelled")
    with pytest.raises(shmfd.InvalidArgumentError):
        caller.next(call, timeout=0)


def test_asyncio_calls_and_serves_without_blocking_the_loop(broker):
    async def main():
        server = shmfd.Server(broker.socket, "py-async-worker")
        server.offer("py/double", max_in_flight=4)
        caller = shmfd.Caller(broker.socket, "py-async-app")

        async def serving():
            answered = 0
            async for event in server:
                if isinstance(event, shmfd.Request):
                    server.respond(event, event.frame.array * 2)
                    answered += 1
                    if answered == 8:
                        return answered

        ticks = 0

        async def ticking():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        served = asyncio.ensure_future(serving())
        ticker = asyncio.ensure_future(ticking())
        calls = [
            caller.call_async("py/double", np.full(16, i, dtype=np.uint8), deadline=10, wait=True)
            for i in range(8)
        ]
        responses = await asyncio.gather(*calls)
        assert await served == 8
        ticker.cancel()
        assert [int(r.frame.array[0]) for r in responses] == [2 * i for i in range(8)]
        assert ticks > 0, "the loop was blocked"

    asyncio.run(main())


def test_a_thousand_calls_leave_no_fd_and_no_mapping(broker):
    server = shmfd.Server(broker.socket, "py-worker")
    server.offer("py/echo")
    caller = shmfd.Caller(broker.socket, "py-app")
    data = np.ones(4096, dtype=np.uint8)

    def echo(s, r):
        s.respond(r, r.frame.array)

    # The first calls set up what stays. Counted with the worker thread gone each time: it may
    # still hold its response's memfd when the caller already has the response.
    worker = serve(server, 10, echo)
    for _ in range(10):
        caller.call("py/echo", data, deadline=5)
    worker.join()
    fds, maps = open_fds(), mappings()
    worker = serve(server, 1000, echo)
    for _ in range(1000):
        response = caller.call("py/echo", data, deadline=5)
        assert response.frame.size >= 4096
        del response
    worker.join()
    assert open_fds() == fds
    # Not one more (a leak would leave a thousand); the garbage collector may free older ones.
    assert mappings() <= maps
