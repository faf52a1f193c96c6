"""Benchmarks."""

import os

# Benchmarks run the system on this machine with generated keys, as `make run` does (production
# refuses to start without configured keys); the processes they start inherit it.
os.environ.setdefault("IOPCARE_DEV_MODE", "true")
