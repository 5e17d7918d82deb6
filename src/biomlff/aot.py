"""Ahead-of-time compiled programs kept on disk, so that a second process skips Python tracing.

JAX's persistent compilation cache (:func:`biomlff.defaults.enable_compilation_cache`) saves the XLA
compile of a repeated command, but not the tracing before it: for SO3LR that is most of a repeated
``biomlff eval`` (the graph of three SO3krates layers, their gradient and the long-range terms takes
tens of seconds to trace on a busy 2-core machine). :func:`cached_jit` wraps a function like
``jax.jit`` and, per argument signature, stores the traced and lowered program as a ``jax.export``
artefact in the user cache (:func:`cache_dir`); a later process deserializes it and calls it (its XLA
compile then hits the persistent compilation cache) instead of tracing the function again.

An artefact is found by a SHA-256 key of:

- the caller's static ``key`` (everything the function closes over that changes its program, e.g.
  ``repr`` of a model's frozen config) and its ``name``;
- the argument signature: tree structure, shapes, dtypes (weak or not) of the leaves, the 64-bit flag
  in force (:func:`biomlff.precision.precision_context`) and the backend;
- the versions of jax and jaxlib, and a hash of every source file of biomlff itself, so that a code
  change can never reuse a stale program.

Arguments are flattened to a tuple of arrays here (custom pytree nodes such as
:class:`biomlff.potential.Pairs` are not serializable by ``jax.export``); the outputs keep their tree
(dicts, lists, tuples). A function that cannot be exported (a host callback, an output node that does
not serialize, a missing ``flatbuffers``) runs through plain ``jax.jit`` for that signature. A file
that cannot be read, is truncated or corrupt (each file carries the SHA-256 of its content) is
traced again and replaced, never an error. ``BIOMLFF_COMPILE_CACHE=off`` turns it off with the XLA
cache. Files are written atomically (:func:`biomlff.fileio.atomic_path`); the folder is kept under
:data:`MAX_BYTES` by removing the least recently used files.

:func:`cached_arrays` keeps data derived from the weights the same way (an ``.npz`` per key, e.g. the
radial tables of :mod:`biomlff.so3lr.tabulate`), so that a repeated command does not rebuild it.

The program run is the same in the first process (it runs the artefact it has just exported) and in
later ones, and the lowering is jit's own, so results are bitwise those of ``jax.jit`` (checked in
tests/core/test_aot.py and for SO3LR on dha).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: file layout version (part of every key; bump to orphan all old files)
FORMAT = 1
MAGIC = b"BIOMLFF-AOT\x00"
SUFFIX = ".jaxexport"
#: size bound of the AOT folder (bytes): least recently used files are removed above it
MAX_BYTES = 512 * 1024**2

__all__ = ["CachedJit", "cache_dir", "cached_arrays", "cached_jit", "source_hash"]


def cache_dir() -> Path | None:
    """Folder of the AOT artefacts: ``$BIOMLFF_AOT_DIR`` (the test suite's own), else
    :func:`biomlff.defaults.user_cache_root` / "aot"; None when ``BIOMLFF_COMPILE_CACHE`` is off
    (0/off/no/false)."""
    from .defaults import user_cache_root

    if os.environ.get("BIOMLFF_COMPILE_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    if os.environ.get("BIOMLFF_AOT_DIR"):
        return Path(os.environ["BIOMLFF_AOT_DIR"])
    return user_cache_root() / "aot"


@functools.cache
def source_hash() -> str:
    """SHA-256 (hex) of every ``.py`` file of the installed biomlff package (relative path and
    content, in sorted order): part of every key, so that edited code never reuses a program."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\x00")
        h.update(path.read_bytes())
        h.update(b"\x00")
    return h.hexdigest()


@functools.cache
def _versions() -> tuple[str, str]:
    import jax
    import jaxlib

    return jax.__version__, jaxlib.__version__


def _trace_settings() -> str:
    """The JAX settings that change a traced program (jit keys its own caches on them: the 64-bit
    flag, default matmul precision, dtype promotion, ...) as a string that is the same in every
    process (values printed with a memory address are left out). Empty if this jax has no such list."""
    try:
        from jax._src import config  # no public equivalent in jax 0.10

        return repr(tuple(v for v in config.trace_context() if " at 0x" not in repr(v)))
    except Exception:  # another jax: its version is part of the key, the x64 flag below still is
        return ""


def signature(args) -> tuple:
    """(leaves, treedef, signature, avals) of a tuple of positional arguments: the signature is the
    tree structure, (shape, dtype, weak type) of every leaf as JAX sees it, the 64-bit flag and the
    other tracing settings in force, and the backend (a hashable tuple)."""
    import jax
    import numpy as np

    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = tuple(jax.typeof(x) for x in leaves)
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    sig = (
        str(treedef),
        tuple((tuple(a.shape), str(a.dtype), bool(a.weak_type)) for a in avals),
        bool(x64),
        _trace_settings(),
        jax.default_backend(),
    )
    return leaves, treedef, sig, avals


def artefact_key(name: str, key: str, sig: tuple) -> str:
    """SHA-256 (hex) of everything a stored program depends on (see the module docstring)."""
    blob = json.dumps([FORMAT, name, key, repr(sig), *_versions(), source_hash()])
    return hashlib.sha256(blob.encode()).hexdigest()


def _read(path: Path) -> bytes | None:
    """The payload of an artefact file, or None if it is missing, unreadable or corrupt."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(MAGIC) + 32
    if len(data) <= head or not data.startswith(MAGIC):
        return None
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC) : head]:
        return None
    return payload


def _write(path: Path, payload: bytes) -> None:
    """Write an artefact atomically (a failed write leaves no file and is not an error)."""
    from .fileio import atomic_write

    try:
        with atomic_write(path, "wb", make_parents=True) as fh:
            fh.write(MAGIC + hashlib.sha256(payload).digest() + payload)
    except Exception as exc:  # a read-only or full cache costs speed, never the result
        log.debug("aot: could not write %s: %s", path, exc)
        return
    _prune(path.parent, keep=path)


def _prune(folder: Path, keep: Path, limit: int = MAX_BYTES) -> None:
    """Remove the least recently used files of ``folder`` (programs and arrays; not the temporaries
    of writes in progress, whose names start with a dot) while it holds more than ``limit`` bytes
    (``keep`` stays)."""
    files = []
    try:
        for p in folder.iterdir():
            if p.suffix in (SUFFIX, ".npz") and not p.name.startswith("."):
                st = p.stat()
                files.append((st.st_mtime, st.st_size, p))
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files, key=lambda t: t[0]):
        if total <= limit:
            break
        if p == keep:
            continue
        try:
            p.unlink()
            total -= size
        except OSError:
            pass  # another process removed it first


def cached_arrays(
    name: str, key: str, build: Callable[[], dict], check: Callable[[dict], bool] | None = None
) -> dict:
    """``build()`` (a dict of NumPy arrays) kept in :func:`cache_dir` as ``<name>-<hash>.npz``, keyed by
    ``key`` (everything the arrays depend on besides biomlff's source), the jax/jaxlib versions and
    :func:`source_hash`; a later process reads the file instead of building. A missing, corrupt or
    foreign file, or one that ``check(arrays)`` rejects, is built again and replaced; with the cache
    off (``BIOMLFF_COMPILE_CACHE=off``) this is ``build()``. The arrays read are the arrays stored,
    bit for bit."""
    from .errors import BiomlffError
    from .fileio import atomic_savez, load_npz

    folder = cache_dir()
    if folder is None:
        return build()
    blob = json.dumps([FORMAT, name, str(key), *_versions(), source_hash()])
    path = folder / f"{name}-{hashlib.sha256(blob.encode()).hexdigest()}.npz"
    try:
        arrays = load_npz(path, f"cached {name}")
        if check is None or check(arrays):
            try:
                os.utime(path)
            except OSError:
                pass
            return arrays
    except (BiomlffError, OSError) as exc:  # missing or unreadable: build again
        log.debug("aot: %s: %s", path, exc)
    arrays = build()
    try:
        atomic_savez(path, arrays, make_parents=True)
    except Exception as exc:  # a read-only or full cache costs time, never the result
        log.debug("aot: could not write %s: %s", path, exc)
    else:
        _prune(folder, keep=path)
    return arrays


class CachedJit:
    """``jax.jit(fun)`` whose programs are kept as ``jax.export`` artefacts (see :func:`cached_jit`).
    Call it with positional arguments (pytrees of arrays)."""

    def __init__(self, fun: Callable, *, key: str, name: str, on_program: Callable[[], None] | None = None):
        self.fun = fun
        self.key = str(key)
        self.name = str(name)
        self.on_program = on_program
        #: signature → [kind, program]: kind "loaded" (from a file, not yet run), "aot" (an artefact
        #: that ran) or "jit" (plain jax.jit of fun); per process
        self._programs: dict = {}
        self._lock = threading.Lock()
        self._jitted = None
        #: how each signature was first served in this process: "loaded", "exported" or "jit"
        self.sources: dict = {}

    def _plain(self):
        if self._jitted is None:
            import jax

            self._jitted = jax.jit(self.fun)
        return self._jitted

    def __call__(self, *args):
        leaves, treedef, sig, avals = signature(args)
        entry = self._programs.get(sig)
        if entry is None:
            with self._lock:
                entry = self._programs.get(sig)
                if entry is None:
                    entry = self._programs[sig] = self._program(leaves, treedef, sig, avals)
                    if self.on_program is not None:
                        self.on_program()
        kind, program = entry
        if kind == "jit":
            return self._plain()(*args)
        if kind == "loaded":  # its first run: a file this jax cannot lower is traced again, replaced
            try:
                out = program(*leaves)
            except Exception as exc:
                log.debug("aot: stored %s unusable (%s); tracing again", self.name, exc)
                entry[:] = self._program(leaves, treedef, sig, avals, reuse=False)
                return self(*args)
            entry[0] = "aot"
            return out
        return program(*leaves)

    def _program(self, leaves, treedef, sig, avals, reuse: bool = True) -> list:
        """[kind, callable on the leaves] for one signature: the stored artefact, else a new one
        (exported and stored now), else plain jit."""
        import jax

        folder = cache_dir()
        if folder is None:
            self.sources[sig] = "jit"
            return ["jit", None]
        path = folder / f"{self.name}-{artefact_key(self.name, self.key, sig)}{SUFFIX}"
        payload = _read(path) if reuse else None
        if payload is not None:
            try:
                program = jax.jit(jax.export.deserialize(bytearray(payload)).call)
                try:
                    os.utime(path)  # recently used (the size bound removes the oldest first)
                except OSError:
                    pass
                self.sources[sig] = "loaded"
                return ["loaded", program]
            except Exception as exc:  # a file this jax cannot read: trace again, replace it
                log.debug("aot: %s unreadable (%s); tracing again", path, exc)

        def flat(*xs):
            return self.fun(*jax.tree_util.tree_unflatten(treedef, xs))

        try:
            specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
            exported = jax.export.export(jax.jit(flat), platforms=[sig[-1]])(*specs)
            payload = bytes(exported.serialize())
            # run what later processes will load (the round trip), so that every run uses one program
            program = jax.jit(jax.export.deserialize(bytearray(payload)).call)
        except Exception as exc:  # not exportable (callbacks, custom output nodes, no flatbuffers)
            log.debug("aot: %s not exportable (%s); plain jit", self.name, exc)
            self.sources[sig] = "jit"
            return ["jit", None]
        _write(path, payload)
        self.sources[sig] = "exported"
        return ["aot", program]


def cached_jit(
    fun: Callable, *, key: str, name: str, on_program: Callable[[], None] | None = None
) -> CachedJit:
    """``jax.jit(fun)`` (positional arguments only) whose compiled program for each argument signature
    is stored as a ``jax.export`` artefact in :func:`cache_dir` and loaded by later processes instead
    of tracing ``fun`` again.

    ``key``: a string that, with biomlff's source, fixes everything ``fun`` closes over (e.g. ``repr``
    of a frozen model config); ``name``: a short file-name prefix (letters, digits, ``-``).
    ``on_program()`` is called once per new argument signature in this process (traced, exported or
    loaded): a counter of programs. Outputs equal ``jax.jit(fun)``'s bit for bit."""
    return CachedJit(fun, key=key, name=name, on_program=on_program)
