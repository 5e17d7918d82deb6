"""Parity and speed of biomlff's sGDML against sgdml 1.0.3 (same training indices, same σ).

Not a test: a benchmark that prints a Markdown table (and appends raw JSON lines to --out).
Each case runs in its own subprocess so that peak RSS (ru_maxrss) is per run:

* biomlff in this interpreter (``.venv``),
* sgdml 1.0.3 in ``.venv-bench-gdml`` (numpy<2.4, CPU torch; ``pip install -e .[bench]`` there does
  not work because biomlff needs numpy 2.4 — create it with
  ``python -m venv .venv-bench-gdml && .venv-bench-gdml/bin/pip install numpy==2.3.5 scipy==1.17.1
  torch==2.13.0 sgdml==1.0.3``). sgdml runs on its NumPy path (``use_torch=False``), one process.

Data: rMD17 (``../shared/datasets/rmd17``), train on ``<mol>_train_01`` (the M indices are the first M
of a permutation seeded with 0), test on all 1000 geometries of ``<mol>_test_01``.
Errors: energy per structure and force components, kcal/mol(/Å).

    .venv/bin/python benchmarks/gdml_parity.py --cases ethanol:200:sym ethanol:200:nosym
    .venv/bin/python benchmarks/gdml_parity.py --cases ethanol:1000:sym --sgdml-max-memory 8
    .venv/bin/python benchmarks/gdml_parity.py --predict ethanol:1000:sym   # same model in both

Memory safety: sgdml's closed form at M=1000 ethanol needs > 22 GB (spec §5); for M ≥ 1000 sgdml is
run with ``--sgdml-max-memory`` (GiB), which makes it use its own iterative solver.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared"))
SGDML_PY = ROOT / ".venv-bench-gdml" / "bin" / "python"
#: σ per (molecule, symmetric?) — chosen by biomlff's validation scan at M=200 (--scan), reused for both
SIGMA = {("ethanol", True): 20.0, ("ethanol", False): 40.0, ("aspirin", True): 40.0, ("aspirin", False): 40.0}


def _rmd17(mol: str, part: str):
    import numpy as np

    with np.load(SHARED / "datasets" / "rmd17" / f"rmd17_{mol}_{part}_01.npz") as f:
        return {k: np.array(f[k]) for k in ("nuclear_charges", "coords", "energies", "forces")}


def _indices(m: int):
    import numpy as np

    return np.sort(np.random.default_rng(0).permutation(1000)[:m])


def _errors(e_ref, e_pred, f_ref, f_pred) -> dict:
    import numpy as np

    de = np.asarray(e_pred).ravel() - np.asarray(e_ref).ravel()
    df = (np.asarray(f_pred) - np.asarray(f_ref)).ravel()
    return {
        "e_mae": float(np.mean(np.abs(de))),
        "e_rmse": float(np.sqrt(np.mean(de**2))),
        "f_mae": float(np.mean(np.abs(df))),
        "f_rmse": float(np.sqrt(np.mean(df**2))),
    }


def _maxrss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _rmd17_frames(mol: str, part: str):
    from biomlff.gdml import load_frames

    path = SHARED / "datasets" / "rmd17" / f"rmd17_{mol}_{part}_01.npz"
    return load_frames(path, energy_key="energies", forces_key="forces")


def _train(frames, m, sym, sigma, max_memory, solver, ecstr: bool = False):
    """biomlff on the benchmark task: the first M of the seeded permutation of train_01, one σ
    (data loading stays outside, so that callers time training only)."""
    from biomlff.gdml import TrainConfig, train

    cfg = TrainConfig(
        n_train=m,
        sigmas=[sigma],
        use_sym=sym,
        idx_train=_indices(m),
        solver=solver,
        max_memory_gb=max_memory,
        energy_constraints=ecstr,
    )
    return train(frames, cfg)


# ------------------------------------------------------------------ workers (run in subprocesses)
def _one_core() -> None:
    """Pin this worker to one core. XLA's CPU runtime keeps a thread pool even with
    ``--xla_cpu_multi_thread_eigen=false`` (measured: 1.8 s CPU per 1 s wall in prediction), so
    without pinning biomlff would use both cores against sgdml's one."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def worker_biomlff(
    mol: str, m: int, sym: bool, sigma: float, max_memory: float, solver: str = "auto", ecstr: bool = False
) -> dict:
    _one_core()
    import numpy as np

    from biomlff import units

    frames, test = _rmd17_frames(mol, "train"), _rmd17_frames(mol, "test")
    t0 = time.perf_counter()
    model, rep = _train(frames, m, sym, sigma, max_memory, solver, ecstr)
    t_train = time.perf_counter() - t0
    model.predict(test.R)  # compile (the timed calls use the same shapes)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        e, f = model.predict(test.R)
        times.append(time.perf_counter() - t0)
    kc = units.kcal_mol
    err = _errors(test.E / kc, e / kc, test.F / kc, f / kc)
    return {
        "train_s": t_train,
        "predict_gps": len(test) / statistics.median(times),
        "perms": model.n_perms,
        "solver": model.info["solver"],
        "iters": model.info.get("solver_iters"),
        "sym_s": rep.timings["symmetry_s"],
        "peak_rss_gb": _maxrss_gb(),
        **err,
        "f_pred_head": np.asarray(f[:50] / kc).ravel().tolist(),
    }


def _tune_sgdml(pred, R) -> int:
    """Give sgdml's NumPy predictor its best chunk size (training points per pass; the M·P rows of
    a chunk should stay in cache: at ethanol M = 1000 sGDML its default chunk = M is ~3× slower than
    500). sgdml's own ``prepare_parallel`` only tries chunks ≥ min(M, n_bulk) with one process, so
    the candidates M, M/2, M/4, M/10, M/20 are timed here on 100 geometries."""
    n_train = pred.n_train
    best = None
    for div in (1, 2, 4, 10, 20):
        cs = max(1, n_train // div)
        pred._set_chunk_size(cs)
        pred.predict(R[:5])
        t0 = time.perf_counter()
        pred.predict(R[:100])
        dt = time.perf_counter() - t0
        if best is None or dt < best[0]:
            best = (dt, cs)
    pred._set_chunk_size(best[1])
    return best[1]


def worker_sgdml(
    mol: str, m: int, sym: bool, sigma: float, max_memory: float, solver: str = "auto", ecstr: bool = False
) -> dict:
    _one_core()
    import hashlib
    import logging

    import numpy as np

    logging.disable(logging.WARNING)
    from sgdml.predict import GDMLPredict
    from sgdml.train import GDMLTrain

    tr, te = _rmd17(mol, "train"), _rmd17(mol, "test")
    idx = _indices(m)

    def ds(d, sel, name):
        R, E, F = d["coords"][sel], d["energies"][sel], d["forces"][sel]
        md5 = hashlib.md5(R.tobytes() + name.encode()).hexdigest()
        return {
            "type": np.array("d"),
            "name": np.array(name),
            "theory": np.array("PBE/def2-SVP"),
            "R": R,
            "E": E[:, None],
            "F": F,
            "z": d["nuclear_charges"].astype(int),
            "md5": np.array(md5),
            "r_unit": np.array("Ang"),
            "e_unit": np.array("kcal/mol"),
        }

    train_ds = ds(tr, idx, f"{mol}-train")
    valid_ds = ds(te, np.arange(10), f"{mol}-valid")
    t0 = time.perf_counter()
    gdml = GDMLTrain(max_memory=max_memory, max_processes=1, use_torch=False)
    task = gdml.create_task(train_ds, m, valid_ds, 1, sig=sigma, use_sym=sym, use_E=True, use_E_cstr=ecstr)
    model = gdml.train(task)
    t_train = time.perf_counter() - t0
    assert sorted(task["idxs_train"].tolist()) == list(range(m))  # the same M geometries as biomlff
    pred = GDMLPredict(model, max_processes=1, use_torch=False)
    R = te["coords"].reshape(len(te["coords"]), -1)
    _tune_sgdml(pred, R)
    pred.predict(R[:10])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        e, f = pred.predict(R)
        times.append(time.perf_counter() - t0)
    f = f.reshape(te["forces"].shape)
    err = _errors(te["energies"], e, te["forces"], f)
    return {
        "train_s": t_train,
        "predict_gps": len(R) / statistics.median(times),
        "perms": int(len(model["perms"])),
        "solver": str(model["solver_name"]),
        "iters": int(model["solver_iters"]) if "solver_iters" in model else None,
        "peak_rss_gb": _maxrss_gb(),
        **err,
        "f_pred_head": np.asarray(f[:50]).ravel().tolist(),
    }


# ------------------------------------------------------------------ prediction on one shared model
def worker_train_save(
    mol: str, m: int, sym: bool, sigma: float, max_memory: float, path: str, solver: str = "cg"
) -> dict:
    """Train biomlff on the benchmark task (CG by default: fast, little memory) and write the model in
    both formats (path, path_sgdml)."""
    _one_core()
    frames = _rmd17_frames(mol, "train")
    t0 = time.perf_counter()
    model, _ = _train(frames, m, sym, sigma, max_memory, solver)
    model.save(path)
    model.save_sgdml(_sgdml_path(path))
    return {"train_s": time.perf_counter() - t0, "solver": model.info["solver"]}


def _sgdml_path(path: str) -> str:
    return str(Path(path).with_suffix("")) + "_sgdml.npz"


def worker_predict_biomlff(mol: str, path: str, batch_size: int = 1024) -> dict:
    _one_core()
    import numpy as np

    from biomlff import units
    from biomlff.gdml import GDMLModel

    model = GDMLModel.load(path)
    R = _rmd17(mol, "test")["coords"].astype(np.float64)
    model.predict(R[:batch_size], batch_size=batch_size)  # compile
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        e, f = model.predict(R, batch_size=batch_size)
        times.append(time.perf_counter() - t0)
    kc = units.kcal_mol
    return {
        "predict_gps": len(R) / statistics.median(times),
        "e_pred_head": (e[:50] / kc).tolist(),
        "f_pred_head": np.asarray(f[:50] / kc).ravel().tolist(),
    }


def worker_predict_sgdml(mol: str, path: str, batch_size: int = 0) -> dict:
    _one_core()
    import logging

    import numpy as np

    logging.disable(logging.WARNING)
    from sgdml.predict import GDMLPredict

    with np.load(_sgdml_path(path), allow_pickle=True) as f:
        model = dict(f)
    R = _rmd17(mol, "test")["coords"]
    R = R.reshape(len(R), -1)
    pred = GDMLPredict(model, max_processes=1, use_torch=False)
    _tune_sgdml(pred, R)
    pred.predict(R[:10])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        e, f = pred.predict(R)
        times.append(time.perf_counter() - t0)
    return {
        "sgdml_chunk": int(pred.chunk_size),
        "predict_gps": len(R) / statistics.median(times),
        "e_pred_head": np.asarray(e[:50]).tolist(),
        "f_pred_head": np.asarray(f[:50]).ravel().tolist(),
    }


def predict_compare(case: str, model_path: str, max_memory: float, rounds: int, batch_size: int) -> dict:
    """Prediction throughput of both packages on the same trained model (biomlff trains it once and
    writes it in both formats), alternating biomlff / sgdml subprocesses ``rounds`` times."""
    import numpy as np

    mol, m, sym = case.split(":")[:3]
    sym_b = sym == "sym"
    if not os.path.exists(model_path):
        r = _subprocess(
            sys.executable,
            f"worker_train_save({mol!r}, {int(m)}, {sym_b}, {SIGMA[(mol, sym_b)]}, {max_memory}, "
            f"{model_path!r})",
        )
        print(f"trained {model_path}: {r}", flush=True)
    gps = {"biomlff": [], "sgdml": []}
    heads = {}
    for _ in range(rounds):
        for impl, py in (("biomlff", sys.executable), ("sgdml", str(SGDML_PY))):
            r = _subprocess(py, f"worker_predict_{impl}({mol!r}, {model_path!r}, {batch_size})")
            gps[impl].append(r["predict_gps"])
            heads[impl] = r
            print(f"{impl}: {r['predict_gps']:.0f} geo/s", flush=True)
    b, s = heads["biomlff"], heads["sgdml"]
    out = {
        "predict_case": case,
        "model": model_path,
        "batch_size": batch_size,
        "biomlff_gps": gps["biomlff"],
        "sgdml_gps": gps["sgdml"],
        "ratio_median": statistics.median(gps["biomlff"]) / statistics.median(gps["sgdml"]),
        "max_dF_kcal": float(np.max(np.abs(np.array(b["f_pred_head"]) - np.array(s["f_pred_head"])))),
        "max_dE_kcal": float(np.max(np.abs(np.array(b["e_pred_head"]) - np.array(s["e_pred_head"])))),
        "loadavg": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    return out


def _env() -> dict:
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        JAX_PLATFORMS="cpu",
        # this checkout's benchmarks/ and src/ (a copy of the repository benchmarks its own code)
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT / "src")]),
        BIOMLFF_SHARED=str(SHARED),
        # one thread for XLA too (sgdml runs on one core with OMP_NUM_THREADS=1)
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    )


def _subprocess(py: str, call: str) -> dict:
    cmd = [py, "-c", f"import json, gdml_parity as g; print('RESULT', json.dumps(g.{call}))"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{call} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


# ------------------------------------------------------------------ driver
def run_case(
    impl: str,
    mol: str,
    m: int,
    sym: bool,
    sigma: float,
    max_memory: float,
    solver: str = "auto",
    ecstr: bool = False,
) -> dict:
    py = sys.executable if impl == "biomlff" else str(SGDML_PY)
    if impl == "sgdml" and not SGDML_PY.exists():
        raise SystemExit(f"{SGDML_PY} not found: create the sgdml environment (see the module docstring)")
    env = _env()
    cmd = [
        py,
        "-c",
        (
            f"import json, gdml_parity as g; print('RESULT', json.dumps(g.worker_{impl}("
            f"{mol!r}, {m}, {sym}, {sigma}, {max_memory}, {solver!r}, {ecstr})))"
        ),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {
            "impl": impl,
            "mol": mol,
            "m": m,
            "sym": sym,
            "sigma": sigma,
            "error": proc.stderr[-2000:],
            "req_solver": solver,
            "ecstr": ecstr,
            "returncode": proc.returncode,
            "wall_s": wall,
        }
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return {
        "impl": impl,
        "mol": mol,
        "m": m,
        "sym": sym,
        "sigma": sigma,
        "wall_s": wall,
        "req_solver": solver,
        "ecstr": ecstr,
        **json.loads(line[len("RESULT ") :]),
    }


def table(rows: list[dict]) -> str:
    import numpy as np

    out = [
        "| case | impl | solver | P | F MAE / RMSE | E MAE / RMSE | train s | peak RSS GB | predict geo/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = [
        "| case | F MAE diff | max ΔF between packages (first 50 test geo.) | train speed-up | "
        "RSS ratio | predict speed-up |",
        "|---|---|---|---|---|---|",
    ]
    cases = {}
    for r in rows:
        key = (r["mol"], r["m"], r["sym"], r.get("req_solver", "auto"), bool(r.get("ecstr")))
        cases.setdefault(key, {})[r["impl"]] = r
    for (mol, m, sym, req, ecstr), d in cases.items():
        name = f"{mol} M={m} {'sGDML' if sym else 'GDML'} σ={next(iter(d.values()))['sigma']:g}"
        if ecstr:
            name += " E-cstr"
        if req != "auto":
            name += f" (biomlff {req})"
        for impl in ("biomlff", "sgdml"):
            r = d.get(impl)
            if r is None:
                continue
            if "error" in r:
                out.append(f"| {name} | {impl} | failed (rc {r['returncode']}) | | | | | | |")
                continue
            its = f" {r['iters']} it" if r.get("iters") else ""
            out.append(
                f"| {name} | {impl} | {r['solver']}{its}"
                f" | {r['perms']} | {r['f_mae']:.4f} / {r['f_rmse']:.4f} | {r['e_mae']:.4f} / "
                f"{r['e_rmse']:.4f} | {r['train_s']:.1f} | {r['peak_rss_gb']:.2f} | {r['predict_gps']:.0f} |"
            )
        b, s = d.get("biomlff"), d.get("sgdml")
        if b and s and "error" not in b and "error" not in s:
            dmax = float(np.max(np.abs(np.array(b["f_pred_head"]) - np.array(s["f_pred_head"]))))
            ratios.append(
                f"| {name} | {100 * (b['f_mae'] / s['f_mae'] - 1):+.2f} % | {dmax:.1e} kcal/mol/Å | "
                f"{s['train_s'] / b['train_s']:.1f}× | {b['peak_rss_gb'] / s['peak_rss_gb']:.2f} | "
                f"{b['predict_gps'] / s['predict_gps']:.1f}× |"
            )
    return "\n".join(out) + "\n\n" + "\n".join(ratios)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--cases",
        nargs="+",
        default=["ethanol:200:sym", "ethanol:200:nosym"],
        help="MOL:M:sym|nosym[:SOLVER[:ecstr]] (SOLVER = biomlff's solver: auto, closed, cg; "
        "ecstr = energy constraints in both packages)",
    )
    ap.add_argument("--impl", nargs="+", default=["biomlff", "sgdml"])
    ap.add_argument("--max-memory", type=float, default=8.0, help="biomlff memory budget (GiB)")
    ap.add_argument(
        "--sgdml-max-memory",
        type=float,
        default=8.0,
        help="sgdml max_memory (GiB); it falls back to its iterative solver above this",
    )
    ap.add_argument("--out", default="/tmp/gdml_parity.jsonl", help="append raw results (JSON lines)")
    ap.add_argument("--from-json", help="only print the table of an existing results file")
    ap.add_argument(
        "--scale",
        action="store_true",
        help="instead: CG training on the 148-atom buckyball catcher (SO3LR labels)",
    )
    ap.add_argument(
        "--predict",
        metavar="MOL:M:sym|nosym",
        help="instead: prediction throughput of both packages on one biomlff-trained model "
        "(written in both formats to --predict-model unless it exists)",
    )
    ap.add_argument("--predict-model", default="/tmp/gdml_predict_model.npz")
    ap.add_argument("--predict-rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024, help="biomlff prediction batch size")
    ap.add_argument("--scale-n-train", type=int, default=500)
    ap.add_argument("--scale-n-test", type=int, default=100)
    ap.add_argument("--scale-n-inducing", type=int, default=3)
    ap.add_argument("--scale-cache", default="/tmp/bb_so3lr_labels.npz")
    ap.add_argument("--scale-labels", choices=("so3lr", "springs"), default="so3lr")
    ap.add_argument("--scale-sigma-factor", type=float, default=1.0, help="σ = factor × median distance")
    ap.add_argument("--scale-lam", type=float, default=1e-10, help="ridge λ of the scale run")
    args = ap.parse_args(argv)
    rows = []
    if args.predict:
        r = predict_compare(
            args.predict, args.predict_model, args.max_memory, args.predict_rounds, args.batch_size
        )
        print(json.dumps(r, indent=1))
        with open(args.out, "a") as fh:
            fh.write(json.dumps(r) + "\n")
        return 0
    if args.scale:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        for name in ("jax", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)
        r = scale_run(
            args.scale_n_train,
            args.scale_n_test,
            args.scale_n_inducing,
            args.scale_cache,
            args.max_memory,
            args.scale_labels,
            args.scale_sigma_factor,
            args.scale_lam,
        )
        print(json.dumps(r, indent=1))
        with open(args.out, "a") as fh:
            fh.write(json.dumps({"scale": r}) + "\n")
        return 0
    if args.from_json:
        rows = [json.loads(ln) for ln in open(args.from_json) if ln.strip()]
        rows = [r for r in rows if "scale" not in r and "predict_case" not in r]
    else:
        for case in args.cases:
            mol, m, sym, *rest = case.split(":")
            solver = rest[0] if rest else "auto"
            ecstr = len(rest) > 1 and rest[1] == "ecstr"
            sym_b = sym == "sym"
            for impl in args.impl:
                r = run_case(
                    impl,
                    mol,
                    int(m),
                    sym_b,
                    SIGMA[(mol, sym_b)],
                    args.max_memory if impl == "biomlff" else args.sgdml_max_memory,
                    solver,  # sgdml ignores it (its own memory rule picks the solver); keys the table
                    ecstr,
                )
                print(json.dumps({k: v for k, v in r.items() if k != "f_pred_head"}), flush=True)
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
                rows.append(r)
    import platform

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
        platform.processor(),
    )
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores, OMP_NUM_THREADS=1\n")
    print(table(rows))
    return 0


# ------------------------------------------------------------------ scale: CG on a 148-atom molecule
def _harmonic_network(positions, cutoff: float = 6.0):
    """Pairs (i, j), reference lengths r0 (Å) and force constants (eV/Å²) of a spring network on
    all pairs closer than ``cutoff`` (bonds stiff, 1-3 pairs softer, weak springs between the
    non-bonded neighbours that keep the host–guest complex together): a cheap, smooth sampler."""
    import numpy as np

    i, j = np.triu_indices(len(positions), 1)
    r0 = np.linalg.norm(positions[i] - positions[j], axis=1)
    sel = r0 < cutoff
    i, j, r0 = i[sel], j[sel], r0[sel]
    k = np.where(r0 < 1.7, 20.0, np.where(r0 < 3.0, 2.0, 0.1))
    return i, j, r0, k


def _sample_bb(n_frames: int, stride: int, seed: int):
    """Thermal geometries of the buckyball catcher (../shared/so3lr/reference/bb.xyz) from Langevin
    MD (300 K, 0.5 fs) on a spring network around the reference structure."""
    import ase.io
    import numpy as np
    from ase import units as u
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = ase.io.read(SHARED / "so3lr" / "reference" / "bb.xyz")
    atoms.pbc = False
    atoms.cell = None
    i, j, r0, k = _harmonic_network(atoms.positions)

    class Springs(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            d = self.atoms.positions[i] - self.atoms.positions[j]
            r = np.linalg.norm(d, axis=1)
            self.results["energy"] = float(np.sum(k * (r - r0) ** 2))
            g = (2 * k * (r - r0) / r)[:, None] * d
            f = np.zeros_like(self.atoms.positions)
            np.add.at(f, i, -g)
            np.add.at(f, j, g)
            self.results["forces"] = f

    atoms.calc = Springs()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * u.fs, temperature_K=300, friction=0.02, rng=np.random.default_rng(seed))
    dyn.run(1000)
    frames, energies, forces = [], [], []
    for _ in range(n_frames):
        dyn.run(stride)
        frames.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return atoms.numbers.copy(), np.array(frames), np.array(energies), np.array(forces)


def scale_run(
    n_train: int,
    n_test: int,
    n_inducing: int,
    cache: str,
    max_memory: float,
    labels: str = "so3lr",
    sigma_factor: float = 1.0,
    lam: float = 1e-10,
) -> dict:
    """Label sampled bb geometries with SO3LR (cached) or keep the sampler's spring-network labels
    (``labels='springs'``: cheap, exactly consistent E/F), train GDML with CG, test."""
    import numpy as np

    from biomlff import units
    from biomlff.gdml import TrainConfig, evaluate, train
    from biomlff.gdml.data import Frames

    n = n_train + n_test
    if labels == "springs":
        z, R, E, F = _sample_bb(n, 20, 0)
    elif os.path.exists(cache):
        with np.load(cache) as f:
            z, R, E, F = f["z"], f["R"], f["E"], f["F"]
    else:
        from ase import Atoms

        from biomlff.calculators.so3lr import SO3LRCalculator

        z, R, _, _ = _sample_bb(n, 20, 0)
        calc = SO3LRCalculator(
            lr_cutoff=None, precision="float64", weights=str(SHARED / "so3lr" / "params.pkl")
        )
        E, F = np.empty(n), np.empty_like(R)
        t0 = time.perf_counter()
        for k in range(n):
            at = Atoms(numbers=z, positions=R[k])
            at.calc = calc
            E[k], F[k] = at.get_potential_energy(), at.get_forces()
        print(f"labelled {n} geometries with SO3LR in {time.perf_counter() - t0:.0f} s", flush=True)
        np.savez(cache, z=z, R=R, E=E, F=F)
    frames = Frames(z=z, R=R, F=F, E=E, name=f"bb-{labels}", source=cache if labels == "so3lr" else "springs")
    from biomlff.gdml.descriptor import descriptor, pair_list

    a, b = pair_list(len(z))
    x = descriptor(R[:n_train:10], a, b)
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    # median heuristic × factor (no σ scan at this size); larger σ = faster spectral decay of K
    sigma = sigma_factor * float(np.median(dist[np.triu_indices(len(x), 1)]))
    idx = np.arange(n_train)
    t0 = time.perf_counter()
    model, rep = train(
        frames,
        TrainConfig(
            n_train=n_train,
            sigmas=[sigma],
            use_sym=False,
            idx_train=idx,
            solver="auto",
            max_memory_gb=max_memory,
            n_inducing=n_inducing,
            lam=lam,
            progress=True,
            checkpoint="/tmp/bb_gdml_cg_checkpoint.npz",
        ),
    )
    t_train = time.perf_counter() - t0
    err = evaluate(model, frames.subset(np.arange(n_train, n)))
    kc = units.kcal_mol
    out = {
        "labels": labels,
        "lam": lam,
        "n_atoms": len(z),
        "n_train": n_train,
        "n_test": n_test,
        "sigma": sigma,
        "train_s": t_train,
        "peak_rss_gb": _maxrss_gb(),
        "solver": model.info["solver"],
        "iters": model.info.get("solver_iters"),
        "converged": model.info.get("converged"),
        "n_inducing_cols": model.info.get("n_inducing_cols"),
        "restarts": model.info.get("restarts"),
        "closed_form_gb": 8 * (3 * len(z) * n_train) ** 2 / 1024**3,
        "f_std_kcal": float(np.std(F[n_train:n])) / kc,
        **err,
    }
    return out


if __name__ == "__main__":
    sys.exit(main())
