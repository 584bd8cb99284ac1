import ctypes
import ctypes.util
import sys

from gateway.runtime import tune_allocator


def test_allocator_tuning_applies_on_glibc() -> None:
    """mallopt accepted both settings (the figures it buys are in `python -m gateway bench`)."""
    is_glibc = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt")
    assert tune_allocator() == is_glibc
