"""shmfdsink and shmfdsrc in real pipelines against a real shmfd-broker (run through ctest)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from shmfd_broker import Broker  # noqa: E402


@pytest.fixture
def broker():
    b = Broker()
    b.start()
    yield b
    b.stop()
    b.dir.cleanup()
