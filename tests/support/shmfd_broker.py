"""A real shmfd-broker in a temporary directory, for the Python and GStreamer test suites."""
import os
import signal
import subprocess
import tempfile
import time

import pytest


def binary(name):
    path = os.environ.get(name)
    if not path:
        raise RuntimeError(f"{name} is not set: run the suite through ctest (make test)")
    return path


class Broker:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="shmfd-py-")
        self.socket = os.path.join(self.dir.name, "broker.sock")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [binary("SHMFD_BROKER_BIN"), "--socket", self.socket, "--log-level", "warn"]
        )
        for _ in range(400):
            if os.path.exists(self.socket):
                return
            time.sleep(0.01)
        raise RuntimeError("shmfd-broker did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def broker():
    """A broker of its own for each test (import it into a conftest.py)."""
    b = Broker()
    b.start()
    yield b
    b.stop()
    b.dir.cleanup()
