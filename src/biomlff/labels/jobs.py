"""Batch labelling: parallel worker processes, per-frame journal, resume after interruption.

One *job* = one frame (atomic numbers, positions Å, charge, multiplicity) + the labeller name and
its plain settings. :func:`label_task` runs a job anywhere (same process, a worker process, a Dask
worker): it rebuilds the labeller once per process (cached, so SCF warm starts carry over between
the frames a worker gets) and returns a plain dict — never raises for a bad frame.

Results are appended to a *journal* (JSON lines, one line per finished frame, flushed and fsynced)
by the coordinating process only. A rerun reads the journal and submits only the frames that are
not in it, so an interrupted batch (Ctrl-C, killed job, power cut) loses at most the frames that
were being computed. A truncated last line (killed while writing) is ignored.

Executors: ``workers=1`` runs in-process; ``workers>1`` uses a ``ProcessPoolExecutor`` (spawn
start method, one BLAS/OpenMP thread pool of ``threads`` per worker). Any object with the
``concurrent.futures.Executor`` interface can be passed as ``executor`` — in particular Dask
distributed's ``Client.get_executor()``, which is the seam for running the same jobs on a cluster
(see docs/data-generation.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import LabelResult, make_labeller


@dataclass
class Frame:
    """One structure to label: index (position in the input), atomic_numbers (N,), positions
    (N,3) Å, total charge (e), multiplicity (2S+1)."""

    index: int
    atomic_numbers: np.ndarray
    positions: np.ndarray
    charge: int = 0
    multiplicity: int = 1

    def key(self) -> str:
        """Fingerprint of the structure (a journal entry only counts for the same structure)."""
        h = hashlib.sha1()
        h.update(np.asarray(self.atomic_numbers, dtype=np.int64).tobytes())
        h.update(np.round(np.asarray(self.positions, dtype=np.float64), 10).tobytes())
        h.update(f"{int(self.charge)},{int(self.multiplicity)}".encode())
        return h.hexdigest()[:16]


def frames_from_dataset(ds, charge: int | None = None, multiplicity: int | None = None) -> list[Frame]:
    """Frames of a :class:`biomlff.data.Dataset`; charge/multiplicity from the dataset when it has
    them, else from the arguments (default 0 and 1). Explicit arguments override the dataset."""
    out = []
    for i in range(len(ds)):
        f = ds.frame(i)
        q = charge if charge is not None else int(round(float(f.get("charge", 0))))
        m = multiplicity if multiplicity is not None else int(round(float(f.get("multiplicity", 1))))
        out.append(Frame(i, np.asarray(f["atomic_numbers"]), np.asarray(f["positions"]), q, m))
    return out


# ----------------------------------------------------------------------------- worker side
_WORKER_CACHE: dict[str, Any] = {}


def _worker_init(threads: int) -> None:
    """Worker-process initializer: cap native thread pools before any engine is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(int(threads))


def label_task(method: str, settings: dict[str, Any], frame: Frame) -> dict[str, Any]:
    """Label one frame; returns ``{'index', 'key', 'ok': True, 'result': {...}}`` or
    ``{'index', 'key', 'ok': False, 'error': message, 'error_type': name}``. Never raises for a
    bad frame (LabelError or any engine exception), so a batch never aborts on one structure."""
    cache_key = method + json.dumps(settings, sort_keys=True, default=str)
    rec: dict[str, Any] = {"index": int(frame.index), "key": frame.key()}
    try:
        lab = _WORKER_CACHE.get(cache_key)
        if lab is None:
            lab = make_labeller(method, **settings)
            _WORKER_CACHE.clear()
            _WORKER_CACHE[cache_key] = lab
        res = lab.label(frame.atomic_numbers, frame.positions, frame.charge, frame.multiplicity)
        rec.update(ok=True, result=res.to_json())
    except Exception as exc:  # per-frame failure: recorded, the batch goes on
        rec.update(ok=False, error=str(exc) or type(exc).__name__, error_type=type(exc).__name__)
    return rec


# ----------------------------------------------------------------------------- journal
class Journal:
    """Append-only JSON-lines record of finished frames. The first line is a header with the
    method, its settings and the input fingerprint; a rerun with other settings is refused."""

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]):
        self.path = Path(path)
        self.header = header
        self.records: dict[int, dict[str, Any]] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._load()
        else:
            self._write_line({"journal": "biomlff-labels", **header})

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        try:
            head = json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.path}: not a biomlff labelling journal ({exc}); delete it to start over"
            ) from exc
        for k in ("method", "settings", "input"):
            if json.dumps(head.get(k), sort_keys=True) != json.dumps(self.header.get(k), sort_keys=True):
                raise ConfigError(
                    f"{self.path}: journal of an earlier run with a different {k} "
                    f"({head.get(k)!r} vs {self.header.get(k)!r}); delete it or choose another output"
                )
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # truncated last line of a killed run: recomputed
                continue
            self.records[int(rec["index"])] = rec
        # a truncated last line would glue onto the next record: terminate it
        if lines and lines[-1] != "":
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n")

    def _write_line(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def done(self, frame: Frame, retry_failed: bool = False) -> bool:
        rec = self.records.get(frame.index)
        if rec is None or rec.get("key") != frame.key():
            return False
        return rec.get("ok", False) or not retry_failed

    def append(self, rec: dict[str, Any]) -> None:
        self._write_line(rec)
        self.records[int(rec["index"])] = rec


# ----------------------------------------------------------------------------- coordinator
@dataclass
class LabelRun:
    """Outcome of a batch: results (index -> LabelResult) of labelled frames, errors (index ->
    message) of failed ones, ``computed`` = frames labelled in this call (the others came from the
    journal), wall time in s."""

    results: dict[int, LabelResult]
    errors: dict[int, str]
    computed: list[int]
    wall_s: float


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="frame",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def run_labelling(
    frames: list[Frame],
    method: str,
    settings: dict[str, Any] | None = None,
    journal: str | os.PathLike | None = None,
    *,
    workers: int = 1,
    executor: cf.Executor | None = None,
    retry_failed: bool = False,
    input_fingerprint: str = "",
    progress: bool = True,
    max_frames: int | None = None,
) -> LabelRun:
    """Label ``frames`` with ``method``/``settings`` (see :func:`biomlff.labels.make_labeller`).

    ``journal``: JSON-lines file where each finished frame is appended at once; frames already in
    it (same structure) are not recomputed (failed ones only with ``retry_failed``). ``workers``:
    processes (1 = in this process); ``executor``: any concurrent.futures-style executor to use
    instead (e.g. Dask ``client.get_executor()``); ``max_frames``: stop after labelling this many
    new frames (used to simulate interruptions). Progress bar with ETA on stderr.
    """
    settings = dict(settings or {})
    # build once here: bad settings and missing engines fail before any work is submitted
    lab = make_labeller(method, **settings)
    settings = lab.settings()
    header = {"method": method, "settings": settings, "input": input_fingerprint, "n_frames": len(frames)}
    jr = Journal(journal, header) if journal is not None else None
    todo = [f for f in frames if not (jr is not None and jr.done(f, retry_failed))]
    if max_frames is not None:
        todo = todo[: int(max_frames)]
    computed: list[int] = []
    t0 = time.perf_counter()
    n_missing = sum(1 for f in frames if not (jr is not None and jr.done(f, retry_failed)))
    bar = _progress(len(frames), len(frames) - n_missing, f"label {method}", progress)
    records: dict[int, dict[str, Any]] = dict(jr.records) if jr is not None else {}

    def finish(rec):
        if jr is not None:
            jr.append(rec)
        records[rec["index"]] = rec
        computed.append(rec["index"])
        bar.update(1)
        if not rec["ok"]:
            bar.write(f"frame {rec['index']}: {rec['error_type']}: {rec['error']}", file=sys.stderr)

    try:
        if executor is None and workers <= 1:
            _WORKER_CACHE.clear()
            _WORKER_CACHE[method + json.dumps(settings, sort_keys=True, default=str)] = lab
            for f in todo:
                finish(label_task(method, settings, f))
        else:
            own = executor is None
            if own:
                executor = cf.ProcessPoolExecutor(
                    max_workers=int(workers),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(settings.get("threads", 1),),
                )
            futures: list[cf.Future] = []
            interrupted = False
            try:
                futures = [executor.submit(label_task, method, settings, f) for f in todo]
                for fut in cf.as_completed(futures):
                    finish(fut.result())
            except BaseException:  # Ctrl-C or a dead worker: finished frames are in the journal
                interrupted = True
                for fut in futures:
                    fut.cancel()
                raise
            finally:
                if own:  # on interruption do not wait for frames still running
                    executor.shutdown(wait=not interrupted, cancel_futures=True)
    finally:
        bar.close()
    results, errors = {}, {}
    wanted = {f.index: f.key() for f in frames}
    for idx, rec in records.items():
        if wanted.get(idx) != rec.get("key"):
            continue
        if rec["ok"]:
            results[idx] = LabelResult.from_json(rec["result"])
        else:
            errors[idx] = f"{rec.get('error_type', 'Error')}: {rec['error']}"
    return LabelRun(results=results, errors=errors, computed=computed, wall_s=time.perf_counter() - t0)
