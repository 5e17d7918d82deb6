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

# one persistent XLA compilation cache for the run (before JAX is imported), shared by the pytest-xdist
# workers and the command-line subprocesses: compiled code is released after every module (below), so
# later modules reload what earlier ones compiled instead of compiling it again, and a second local
# run reuses all of it. BIOMLFF_COMPILE_CACHE=off runs without it.
os.environ.setdefault("BIOMLFF_COMPILE_CACHE", str(ROOT / ".jax_cache"))
# the AOT-exported programs (biomlff.aot) of the suite stay beside it, out of the user's cache
os.environ.setdefault("BIOMLFF_AOT_DIR", str(ROOT / ".jax_cache" / "aot"))
from biomlff.defaults import enable_compilation_cache  # noqa: E402

enable_compilation_cache()


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path of ../shared (read-only data and specs). Missing shared data is an error, not a skip."""
    if not SHARED.is_dir():
        raise FileNotFoundError(f"shared material not found at {SHARED}; set BIOMLFF_SHARED")
    return SHARED


@pytest.fixture()
def argon_file(tmp_path) -> Path:
    """A periodic fcc argon lattice (3×3×3 cells of 5.4 Å, 108 atoms) as extxyz: the cheap system of
    the MD command-line tests (``--model lj``)."""
    from ase import Atoms
    from ase.io import write

    from biomlff.md.testing import fcc_lattice

    pos, cell = fcc_lattice(3, 5.4)
    path = tmp_path / "argon.xyz"
    write(path, Atoms(numbers=[18] * len(pos), positions=pos, cell=cell, pbc=True), format="extxyz")
    return path


@pytest.fixture(scope="session")
def params(shared):
    """The published SO3LR weights (``../shared/so3lr/params.pkl``), read once per test process: the
    one weights fixture of every pillar's tests (read-only; functions that add radial tables copy)."""
    from biomlff.so3lr.weights import read_params_pickle

    return read_params_pickle(shared / "so3lr" / "params.pkl")


@pytest.fixture(scope="session")
def so3lr_cache(shared, tmp_path_factory) -> Path:
    """A user cache (for ``BIOMLFF_CACHE``) holding the published SO3LR weights, imported once per
    session from ``../shared/so3lr/params.pkl``: CLI tests need no weights in the real user cache."""
    from biomlff.so3lr.weights import read_params_pickle, save_canonical

    root = tmp_path_factory.mktemp("so3lr_cache")
    save_canonical(read_params_pickle(shared / "so3lr" / "params.pkl"), root / "so3lr", source="test")
    return root


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_code():
    """Drop JAX's compiled executables after every test module.

    Each XLA:CPU executable keeps a few memory mappings (~6) for as long as JAX caches it, so one
    pytest process of the whole suite (thousands of compilations) approached the kernel's
    vm.max_map_count (65530 by default) and died with a segmentation fault inside XLA's compiler
    near the end of the suite (2026-12-04 in the cache write, 2026-12-07 in
    backend_compile_and_load, both in tests/training/test_training.py). Measured: 200 small jitted functions
    add 1,266 mappings and ``jax.clear_caches()`` releases them."""
    yield
    import sys

    jax = sys.modules.get("jax")
    if jax is not None:
        import gc

        jax.clear_caches()
        gc.collect()
