"""shmfdsink and shmfdsrc in real pipelines against a real shmfd-broker (run through ctest)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "support"))
from shmfd_broker import broker  # noqa: E402,F401 (a fixture)
