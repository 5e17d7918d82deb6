"""The documented commands run: the command lines of README.md and docs/*.md that are marked
runnable are executed, document by document, and the test fails when one of them fails.

Marking convention (enforced by ``test_every_documented_command_is_marked``, which is fast):

* A *command line* is a line of a code block that starts with ``biomlff SUBCOMMAND`` (after its
  indentation). Every code block (fenced, or indented by four spaces) of README.md and docs/*.md
  that holds one carries a marker comment on the nearest non-blank line above it, one of::

      <!-- runnable -->                   run in CI (shortened, see below)
      <!-- runnable-slow: REASON -->      runs, but costs minutes even shortened: only with
                                          BIOMLFF_DOCS_SLOW=1 (or BIOMLFF_DOCS_FULL=1)
      <!-- not-runnable: REASON -->       never run: "synopsis" (a usage summary with
                                          placeholders), "takes hours", "needs a GPU", ...

  A runnable block runs *all* its lines in order, shell lines too (``cp ...``,
  ``NAME=$(python -c ...)``, whose output becomes ``$NAME`` in later lines).
* In README.md's "Documentation" list, commands in backticks carry the marker on the same line.
* docs/benchmarks.md records measurements: its blocks run only where explicitly marked.
* Every command of a not-runnable block, synopses excepted, must still parse (argparse).

How a document runs: its commands run in order in one fresh working directory (later ones use
earlier outputs), ``biomlff`` commands in-process through ``biomlff.cli.main.main`` (exit status
0 required), other lines through ``bash`` with the test's Python first on PATH. The directory
holds ``docs/`` (links to the repository's docs files) and has ``../shared`` beside it, so
``docs/train_example.yaml`` and ``../shared/...`` resolve; files the docs name as the user's own
data (``peptide.xyz``, ``water_64.xyz``, ``ethanol.npz``, ...) are linked or made per document
(``INPUTS``). The SO3LR weights come from ../shared/so3lr/params.pkl through the ``so3lr_cache``
fixture (a temporary ``BIOMLFF_CACHE``), so a clean machine needs no ``biomlff weights fetch``.

Shortening (the default, CI): unless ``BIOMLFF_DOCS_FULL=1`` the options of a command are cut
before it runs, the docs' text stays as written (``shrink``): ``--steps N`` becomes ceil(√N)
(2000 → 45; a restart that doubles the run still continues), ``--log-every``/``--traj-every``/
``--checkpoint-every``/``--stride`` shrink by the same ratio to a divisor of the new run, ``md``
without ``--steps`` runs 32 steps, training stops after 2 steps of 1 epoch, dataset sizes are
capped (``--n-train`` 20, ``--n-valid`` 10, ``--n-test`` 10, ``--n-configs`` 20), ``--beads`` 4,
and analysis ``--frames`` selections are dropped (the shortened runs have fewer frames). The
command actually run is printed with its time. ``BIOMLFF_DOCS_FULL=1`` runs everything as written
(hours).

Cost: compilation dominates (an SO3LR MD run of the peptide compiles for ~45 s on one core, the
192-atom water box ~75 s; a few dozen steps cost seconds), hence the runnable-slow tier. JAX's
persistent compilation cache was tried and not kept: it saved the restart of docs/md.md's worked
example 1 its compilation (22.5 -> 7.7 s) but the other commands compile distinct programs and
paid for the cache writes (document total 147 -> 137 s CPU, within the run-to-run spread).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BIOMLFF_SHARED", ROOT.parent / "shared")).resolve()

DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
#: documents whose blocks run only where explicitly marked (records of measurements)
OPT_IN_DOCS = {"docs/benchmarks.md"}
MARKER = re.compile(r"<!--\s*(runnable|(?:runnable-slow|not-runnable):\s*(?P<reason>[^>]*?))\s*-->")
FENCE = re.compile(r"^(\s*)(```|~~~)")
INLINE = re.compile(r"`(biomlff [^`]+)`")
ASSIGN = re.compile(r"^([A-Za-z_]\w*)=\$\((.*)\)$")


def _subcommands() -> set[str]:
    from biomlff.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


SUBCOMMANDS = _subcommands()


def is_command(line: str) -> bool:
    """True for a line that starts with ``biomlff SUBCOMMAND`` (a ``$ `` prompt allowed)."""
    words = line.strip().removeprefix("$ ").split()
    return len(words) >= 2 and words[0] == "biomlff" and words[1] in SUBCOMMANDS


# ---------------------------------------------------------------------------------------------
# Parsing the documents
# ---------------------------------------------------------------------------------------------


class Block:
    """A code block: its document, first line (1-based), lines, and marker (None if unmarked)."""

    def __init__(self, doc, lineno, lines, marker, inline=False):
        self.doc, self.lineno, self.lines, self.inline = doc, lineno, lines, inline
        m = MARKER.search(marker or "")
        self.marked = m is not None
        kind = m.group(1).split(":")[0] if m else None
        self.runnable = kind in ("runnable", "runnable-slow")
        self.slow = kind == "runnable-slow"
        self.reason = (m.group("reason") or "").strip() if m else None

    @property
    def commands(self) -> list[str]:
        """The logical lines (``\\`` continuations joined) that are biomlff command lines."""
        return [c for c in logical_lines(self.lines) if is_command(c)]

    def __repr__(self):
        return f"{self.doc}:{self.lineno}"


def logical_lines(lines) -> list[str]:
    """Lines with backslash continuations joined, blank lines and whole-line comments dropped."""
    out, cur = [], ""
    for raw in lines:
        line = raw.rstrip()
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        cur += line.strip()
        if cur and not cur.startswith("#"):
            out.append(cur)
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def _marker_above(lines, i) -> str | None:
    """The nearest non-blank line above line index ``i``."""
    for j in range(i - 1, -1, -1):
        if lines[j].strip():
            return lines[j]
    return None


def parse_blocks(doc: str) -> list[Block]:
    """Code blocks (fenced or indented) of ``doc`` that hold a command line, and for README.md its
    backticked inline commands (one Block per line that holds any)."""
    lines = (ROOT / doc).read_text().splitlines()
    blocks, i, section = [], 0, ""
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(m.group(2)):
                j += 1
            indent = len(m.group(1))
            body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1 : j]]
            blocks.append(Block(doc, i + 2, body, _marker_above(lines, i)))
            i = j + 1
            continue
        if lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            body = [ln[4:] for ln in lines[i:j]]
            blocks.append(Block(doc, i + 1, body, _marker_above(lines, i)))
            i = j
            continue
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        if doc == "README.md" and section == "Documentation" and INLINE.search(lines[i]):
            cmds = [c for c in INLINE.findall(lines[i]) if is_command(c)]
            if cmds:
                blocks.append(Block(doc, i + 1, cmds, lines[i], inline=True))
        i += 1
    return [b for b in blocks if b.commands]


def shell_commands(line: str) -> list[str]:
    """A logical line split at ``&&`` (outside quotes) into simple commands."""
    return [part.strip() for part in re.split(r"\s&&\s", line) if part.strip()]


# ---------------------------------------------------------------------------------------------
# Shrinking step counts (BIOMLFF_DOCS_FULL != "1")
# ---------------------------------------------------------------------------------------------

FULL = os.environ.get("BIOMLFF_DOCS_FULL") == "1"
#: also run the blocks marked runnable-slow (shrunk unless BIOMLFF_DOCS_FULL=1)
SLOW = FULL or os.environ.get("BIOMLFF_DOCS_SLOW") == "1"
#: options that count steps, and intervals in steps (cut by the same ratio as the run's --steps)
STEPS = "--steps"
INTERVALS = ("--log-every", "--traj-every", "--checkpoint-every", "--stride")
#: commands whose run length is --steps, with its default
DEFAULT_STEPS = {"md": 1000, "sample": None}
#: options capped at a value (training stops after 2 steps of one epoch; dataset sizes)
CAPS = {"--epochs": 1, "--n-train": 20, "--n-valid": 10, "--n-test": 10, "--n-configs": 20, "--beads": 4}
#: commands whose --max-steps is capped (and added when absent); opt's stays: it decides success
MAX_STEPS = {"train": 2, "finetune": 2}
#: options dropped: frame selections of analyses (the shortened runs have fewer frames)
DROP = ("--frames",)


def shrunk_steps(n: int) -> int:
    """A run of n steps becomes ceil(sqrt(n)) steps (400 -> 20, 2000 -> 45, 4000 -> 64, 20000 ->
    142): a restart that at least doubles the run (as in the docs) still continues. The cost of these
    runs is compilation; a few dozen steps cost seconds."""
    return min(n, max(1, math.ceil(math.sqrt(n))))


def _options(argv):
    """{option: value} of ``--opt value`` and ``--opt=value`` tokens."""
    out = {}
    for i, tok in enumerate(argv):
        name, eq, val = tok.partition("=")
        if name.startswith("--"):
            out[name] = val if eq else (argv[i + 1] if i + 1 < len(argv) else "")
    return out


def shrink(argv: list[str]) -> list[str]:
    """``argv`` (without the leading ``biomlff``) with step-like options cut (module docstring)."""
    cmd = argv[0] if argv else ""
    opts = _options(argv)
    steps = int(opts[STEPS]) if STEPS in opts else DEFAULT_STEPS.get(cmd)
    ratio = steps / shrunk_steps(steps) if steps else 1.0

    def cut(name, value):
        if name == STEPS:
            return str(shrunk_steps(int(value)))
        if name in INTERVALS:  # the same ratio, then the largest divisor of the shortened run below it
            every = max(1, math.ceil(int(value) / ratio))
            if steps:
                every = max(k for k in range(1, every + 1) if shrunk_steps(steps) % k == 0)
            return str(every)
        if name in CAPS:
            return str(min(int(value), CAPS[name]))
        if name == "--max-steps" and cmd in MAX_STEPS:
            return str(min(int(value), MAX_STEPS[cmd]))
        return value

    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        name, eq, val = tok.partition("=")
        takes_value = name.startswith("--") and not eq and i + 1 < len(argv)
        if name in DROP:
            i += 1 if eq else 2
            continue
        if eq and name.startswith("--"):
            out.append(f"{name}={cut(name, val)}")
        elif takes_value and cut(name, argv[i + 1]) != argv[i + 1]:
            out += [tok, cut(name, argv[i + 1])]
            i += 1
        else:
            out.append(tok)
        i += 1
    if cmd in MAX_STEPS:
        if "--max-steps" not in opts:
            out += ["--max-steps", str(MAX_STEPS[cmd])]
        if "--epochs" not in opts:
            out += ["--epochs", str(CAPS["--epochs"])]
    if STEPS not in opts and DEFAULT_STEPS.get(cmd):
        out += [STEPS, str(shrunk_steps(DEFAULT_STEPS[cmd]))]
    return out


# ---------------------------------------------------------------------------------------------
# Inputs the docs name by a bare file name (user data): linked from ../shared or the package, or
# made here
# ---------------------------------------------------------------------------------------------

PACKAGE = ROOT / "src" / "biomlff" / "resources"


def _water_h5(path: Path):
    """Three frames of the 64-water box (the file's structure, rattled by 0.01 Å) as H5MD."""
    import ase.io
    import numpy as np

    from biomlff.md.trajectory import open_trajectory

    atoms = ase.io.read(SHARED / "so3lr" / "reference" / "water_64.xyz")
    rng = np.random.default_rng(0)
    w = open_trajectory(path, atoms.numbers, periodic=True)
    for k in range(3):
        pos = atoms.positions + rng.normal(0, 0.01, atoms.positions.shape)
        w.write(k, 0.5 * k, pos, None, atoms.cell.array, {})
    w.close()


def _ethanol_frames_xyz(path: Path):
    """Five ethanol geometries of the rMD17 test set as plain XYZ (no labels)."""
    import ase.io

    from biomlff.data import read_dataset

    ds = read_dataset(SHARED / "datasets" / "rmd17" / "rmd17_ethanol_test_01.npz", energy_key="energies")
    frames = [ds.to_atoms(i) for i in range(5)]
    for a in frames:
        a.calc = None
        a.info = {}
    ase.io.write(path, frames, format="xyz")


def _ethanol_extxyz(path: Path):
    """Five labelled frames of the shipped MD17 ethanol set (eV, eV/Å) as extended XYZ."""
    from biomlff.data import example_path, read_dataset, write_dataset

    write_dataset(read_dataset(example_path(), index=":5"), path)


def _aspirin_model(path: Path):
    """A small sGDML aspirin model (M = 20) trained here, standing in for the user's model."""
    from biomlff.cli.main import main

    data = SHARED / "datasets" / "rmd17" / "rmd17_aspirin_train_01.npz"
    opts = "--energy-key energies --n-train 20 --n-valid 10 --sigma 20 --no-progress -o".split()
    assert main(["gdml", "train", str(data), *opts, str(path)]) == 0


def _tetrahedral(u):
    """Three unit vectors at 109.47° from the unit vector u and from each other."""
    import numpy as np

    p = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    p /= np.linalg.norm(p)
    q = np.cross(u, p)
    phis = np.radians([0.0, 120.0, 240.0])
    return [-u / 3 + np.sqrt(8 / 9) * (np.cos(f) * p + np.sin(f) * q) for f in phis]


def _dimer_xyz(path: Path):
    """A 21-atom complex for ``bind --fragment 0-11 --fragment 12-20 --charges -1 0``: the alaninate
    anion H2N-CH(CH3)-COO⁻ (12 atoms, built from ideal bond lengths and angles) and an ethanol of the
    shipped MD17 set (9 atoms), its centre 4.5 Å from the anion's carboxylate."""
    import ase.io
    import numpy as np
    from ase import Atoms

    from biomlff.data import example_path, read_dataset

    d = [np.array(v, float) / np.sqrt(3) for v in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]
    ca = np.zeros(3)
    c, n, cb, ha = ca + 1.53 * d[0], ca + 1.47 * d[1], ca + 1.53 * d[2], ca + 1.09 * d[3]
    hb = [cb + 1.09 * v for v in _tetrahedral(-d[2])]
    hn = [n + 1.01 * v for v in _tetrahedral(-d[1])[:2]]
    # carboxylate: two O at 120° from C-CA in the plane of CA, C and N
    u = -d[0]
    w = np.cross(u, np.cross(n - c, u))
    w /= np.linalg.norm(w)
    o = [c + 1.26 * (np.cos(np.radians(120)) * u + s * np.sin(np.radians(120)) * w) for s in (1, -1)]
    anion = Atoms("CCNCH" + "HHH" + "HH" + "OO", positions=[ca, c, n, cb, ha, *hb, *hn, *o])
    eth = read_dataset(example_path()).to_atoms(0)
    eth.positions += c + 4.5 * d[0] - eth.positions.mean(axis=0)
    dimer = Atoms(anion.numbers.tolist() + eth.numbers.tolist(), np.vstack([anion.positions, eth.positions]))
    ase.io.write(path, dimer, format="xyz")


SHARED_FILE = {
    "water_64.xyz": SHARED / "so3lr" / "reference" / "water_64.xyz",
    "md22_5frames": SHARED / "datasets" / "md22" / "md22_Ac-Ala3-NHMe_5frames.xyz",
    "ethanol_train": SHARED / "datasets" / "rmd17" / "rmd17_ethanol_train_01.npz",
    "ethanol_test": SHARED / "datasets" / "rmd17" / "rmd17_ethanol_test_01.npz",
    "aspirin_train": SHARED / "datasets" / "rmd17" / "rmd17_aspirin_train_01.npz",
    "aspirin_test": SHARED / "datasets" / "rmd17" / "rmd17_aspirin_test_01.npz",
}
#: per document: the files it names by a bare name as the user's own data -> a file to link, or a
#: function that makes it (made before the document's first command)
INPUTS = {
    "README.md": {
        "peptide.xyz": PACKAGE / "structures" / "ac_ala3_nhme.xyz",
        "frames.extxyz": _ethanol_extxyz,
        "md22.xyz": SHARED_FILE["md22_5frames"],
        "ethanol.npz": SHARED_FILE["ethanol_train"],
        "water.h5": _water_h5,
    },
    "docs/md.md": {"water_64.xyz": SHARED_FILE["water_64.xyz"]},
    "docs/gdml.md": {
        "ethanol_train.npz": SHARED_FILE["ethanol_train"],
        "ethanol_test.npz": SHARED_FILE["ethanol_test"],
        "frames.xyz": _ethanol_frames_xyz,
        "rmd17_aspirin_train_01.npz": SHARED_FILE["aspirin_train"],
        "rmd17_aspirin_test_01.npz": SHARED_FILE["aspirin_test"],
        "aspirin.model.npz": _aspirin_model,
    },
    "docs/so3lr.md": {"frames.extxyz": _ethanol_extxyz, "dimer.xyz": _dimer_xyz},
}


def provide_inputs(doc: str, cwd: Path):
    """Link or make the files of ``INPUTS[doc]`` in ``cwd``."""
    for name, src in INPUTS.get(doc, {}).items():
        if callable(src):
            src(cwd / name)
        else:
            (cwd / name).symlink_to(src)


# ---------------------------------------------------------------------------------------------
# Running a document
# ---------------------------------------------------------------------------------------------


def runnable_blocks(doc: str, slow: bool = SLOW) -> list[Block]:
    """The blocks of ``doc`` to run: those marked runnable, and runnable-slow ones if ``slow``."""
    return [b for b in parse_blocks(doc) if b.runnable and (slow or not b.slow)]


def _expand(line: str, variables: dict) -> str:
    return re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)


def _shell(cmd: str, cwd: Path, env: dict) -> tuple[int, str]:
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def _biomlff(argv: list[str], assignments: dict) -> tuple[int, str]:
    """Run ``biomlff ARGV`` in-process with ``NAME=value`` prefixes set for the call."""
    from biomlff.cli.main import main

    saved = {k: os.environ.get(k) for k in assignments}
    os.environ.update(assignments)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse errors
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rc, buf.getvalue()


def run_document(doc: str, cwd: Path, log) -> list[tuple[str, float, float]]:
    """Run the runnable blocks of ``doc`` in ``cwd``; returns (command, wall s, CPU s) per command.
    Fails at the first command that fails, with its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    variables: dict[str, str] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    provide_inputs(doc, cwd)
    inputs = "(inputs: " + ", ".join(INPUTS.get(doc, {})) + ")"
    timings = [(inputs, time.perf_counter() - t0, time.process_time() - c0)]
    for block in runnable_blocks(doc):
        for line in logical_lines(block.lines):
            for simple in shell_commands(line):
                t0, c0 = time.perf_counter(), time.process_time()
                m = ASSIGN.match(simple)
                if m:  # NAME=$(command): the command's output becomes $NAME of later lines
                    rc, out = _shell(m.group(2), cwd, env)
                    variables[m.group(1)] = out.strip()
                    shown = simple
                else:
                    words = shlex.split(_expand(simple, variables), comments=True)
                    assignments = {}
                    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                        key, _, value = words.pop(0).partition("=")
                        assignments[key] = value
                    if not words:
                        continue
                    if words[0] == "biomlff":
                        argv = words[1:] if FULL else shrink(words[1:])
                        shown = " ".join(["biomlff", *argv])
                        log(f"$ {shown}")
                        rc, out = _biomlff(argv, assignments)
                    else:
                        shown = simple
                        log(f"$ {shown}")
                        rc, out = _shell(_expand(simple, variables), cwd, {**env, **assignments})
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                timings.append((shown, dt, cpu))
                log(out.rstrip()[-3000:])
                log(f"# exit {rc}, {dt:.1f} s wall, {cpu:.1f} s CPU of this process")
                assert rc == 0, (
                    f"{block} (documented command failed, exit {rc}):\n  {simple}\n  ran as: {shown}\n"
                    f"{out.rstrip()[-4000:]}"
                )
    return timings


def _workdir(tmp_path: Path) -> Path:
    """tmp/root (the working directory, with docs/ linked file by file) beside tmp/shared."""
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    for f in (ROOT / "docs").iterdir():
        if f.is_file():
            (root / "docs" / f.name).symlink_to(f)
    (tmp_path / "shared").symlink_to(SHARED)
    return root


RUN_DOCS = [d for d in DOCS if runnable_blocks(d, slow=True)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUN_DOCS)
def test_documented_commands_run(doc, tmp_path, so3lr_cache, monkeypatch, capsys):
    if not runnable_blocks(doc):
        pytest.skip(f"{doc}: only runnable-slow blocks (BIOMLFF_DOCS_SLOW=1 runs them)")
    monkeypatch.setenv("BIOMLFF_CACHE", str(so3lr_cache))
    cwd = _workdir(tmp_path)
    monkeypatch.chdir(cwd)
    lines: list[str] = []
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        timings = run_document(doc, cwd, lines.append)
    finally:
        print("\n".join(lines))
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
    with capsys.disabled():
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        mode = ("full" if FULL else "shrunk") + (", with runnable-slow blocks" if SLOW else "")
        n = len(timings) - 1
        print(f"\n[docs-run] {doc}: {n} commands, {total:.0f} s wall, {cpu:.0f} s CPU ({mode})")
        for cmd, dt, c in timings:
            print(f"[docs-run]   {dt:6.1f} s wall {c:6.1f} s CPU  {cmd[:140]}")


# ---------------------------------------------------------------------------------------------
# The convention itself (fast)
# ---------------------------------------------------------------------------------------------


def test_every_documented_command_is_marked():
    """Every block with a command line carries a marker, not-runnable and runnable-slow ones say
    why, and every command that is not a synopsis parses (also the ones that do not run)."""
    from biomlff.cli.main import build_parser

    unmarked, no_reason, bad = [], [], []
    for doc in DOCS:
        for b in parse_blocks(doc):
            if not b.marked:
                if doc not in OPT_IN_DOCS:
                    unmarked.append(f"{b}: {b.commands[0][:80]}")
                continue
            if (b.slow or not b.runnable) and not b.reason:
                no_reason.append(str(b))
            if b.reason and b.reason.startswith("synopsis"):
                continue
            for line in b.commands:
                for simple in shell_commands(line):
                    words = shlex.split(simple, comments=True)
                    if not is_command(" ".join(words)):
                        continue
                    words = [re.sub(r"\$\{?\w+\}?", "x.xyz", w) for w in words]
                    try:
                        with contextlib.redirect_stderr(io.StringIO()) as err:
                            build_parser().parse_args(words[1:])
                    except SystemExit:
                        bad.append(f"{b}: {simple}\n    {err.getvalue().strip().splitlines()[-1]}")
    assert not unmarked, (
        "code blocks with biomlff commands need <!-- runnable -->, <!-- runnable-slow: REASON --> or "
        "<!-- not-runnable: REASON --> "
        "on the line above (see tests/core/test_docs_run.py):\n" + "\n".join(unmarked)
    )
    assert not no_reason, "not-runnable markers need a reason: " + ", ".join(no_reason)
    assert not bad, "documented commands that do not parse:\n" + "\n".join(bad)
    assert RUN_DOCS, "no runnable documented commands found"


def test_shrink_keeps_restarts_and_intervals():
    """Shrinking keeps restarts going further than their first run, intervals dividing the run,
    caps training, leaves opt's --max-steps alone (it decides convergence) and the docs' text."""
    a = shrink("md nvt x.xyz --steps 2000 --log-every 100 --traj-every 7".split())
    b = shrink("md npt x.xyz --restart-from x.chk.npz --steps 20000".split())
    opts_a, opts_b = _options(a), _options(b)
    assert opts_a["--steps"] == "45" and opts_b["--steps"] == "142"
    assert all(int(opts_a["--steps"]) % int(opts_a[k]) == 0 for k in ("--log-every", "--traj-every"))
    assert all(shrunk_steps(n) <= shrunk_steps(n + 1) for n in range(1, 50000, 97))
    assert all(shrunk_steps(n) < shrunk_steps(2 * n) for n in range(3, 50000, 97))
    assert shrink(["opt", "x.xyz", "--max-steps", "1000"]) == ["opt", "x.xyz", "--max-steps", "1000"]
    t = _options(shrink(["train", "cfg.yaml"]))
    assert t["--max-steps"] == "2" and t["--epochs"] == "1"
    rdf = ["analyze", "rdf", "t.h5", "-o", "r"]
    assert shrink([*rdf, "--frames", "25:"]) == rdf
    assert _options(shrink(["md", "nvt", "x.xyz"]))["--steps"] == "32"
    assert _options(shrink(["gdml", "train", "e.npz", "--n-train=1000"]))["--n-train"] == "20"
