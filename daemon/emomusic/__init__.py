"""emomusic: an emotion-aware ambient music daemon for a Raspberry Pi."""

import os
from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version (pyproject.toml), so --version and HA discovery agree with pip
    __version__ = version("emomusic")
except PackageNotFoundError:  # a source tree on sys.path without an install (scripts/)
    __version__ = "0+unknown"

# Nothing but emotion labels may leave the device. onnxruntime's Linux wheels (1.2x+) carry 1DS
# telemetry that stores a device id and an event cache on disk and uploads them; this opt-out must
# be in the environment before onnxruntime initialises, so it is set when the package is imported.
# (ORT_TELEMETRY_DISABLED is the name later onnxruntime releases read.)
for _name in ("ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED"):
    os.environ.setdefault(_name, "1")

# numpy's OpenBLAS starts a thread per core that spins between the daemon's small matrix products
# (a third of its CPU on a 2-core machine, measured with scripts/bench.py); every stage is its own
# thread already, so BLAS gets one.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
