"""Test configuration: single-threaded BLAS/XLA (2 threads on 2 busy cores are many times slower)
and the location of the read-only shared material (../shared beside the checkout)."""

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path of ../shared (read-only data and specs). Missing shared data is an error, not a skip."""
    if not SHARED.is_dir():
        raise FileNotFoundError(f"shared material not found at {SHARED}; set BIOMLFF_SHARED")
    return SHARED
