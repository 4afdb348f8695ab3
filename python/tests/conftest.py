"""A real shmfd-broker for each test, and the C++ programs for interop."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "support"))
from shmfd_broker import broker  # noqa: E402,F401 (a fixture)


def _binary(name):
    path = os.environ.get(name)
    if not path:
        pytest.fail(f"{name} is not set: run the suite through ctest (make test)")
    return path


@pytest.fixture
def pub_bin():
    return _binary("SHMFD_PUB_BIN")


@pytest.fixture
def sub_bin():
    return _binary("SHMFD_SUB_BIN")
