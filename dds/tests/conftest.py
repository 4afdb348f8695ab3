"""shmfd-dds-bridge between two brokers on one machine, over loopback DDS (run through ctest)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "support"))
