"""emomusic: an emotion-aware ambient music daemon for a Raspberry Pi."""

import os
import sys
from pathlib import Path


def _installed_version() -> str:
    """The installed distribution's version (pyproject.toml), so --version and HA discovery agree with pip.

    Read from the name of its ``emomusic-<version>.dist-info`` folder (the wheel spec's layout, which pip
    writes for plain and editable installs): importlib.metadata would find the same folder but parse its
    METADATA with the email package, 1.3 MB of a steady daemon's memory for one string."""
    for entry in sys.path:
        for info in Path(entry or ".").glob("emomusic-[0-9]*.dist-info"):
            return info.name[len("emomusic-"):-len(".dist-info")]
    return "0+unknown"  # a source tree on sys.path without an install (scripts/)


__version__ = _installed_version()

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
