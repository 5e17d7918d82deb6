"""Path-integral (ring-polymer) molecular dynamics with P beads for any biomlff Potential.

Each atom is a ring polymer of P beads. With β = 1/k_BT and ω_P = P k_BT/ħ, the ring-polymer
Hamiltonian sampled at P·T (i-PI's convention, physical bead masses) is

    H_P = Σ_j [ Σ_i p_ij²/(2 m_i) + V(q_j) ] + Σ_j Σ_i ½ m_i ω_P² |q_ij − q_i,j+1|²  (j + P ≡ j)

* **Normal modes.** q̃ = Cᵀ q with the real orthogonal matrix C (:func:`normal_mode_matrix`,
  columns: centroid, cosines, the alternating mode for even P, sines); the free ring polymer is then
  P independent oscillators of frequency ω_k = 2 ω_P sin(πk/P) (k = 0 is the free centroid) and is
  propagated exactly for any time step (:func:`free_ring_polymer_step`).
* **Integrator.** B(dt/2) A(dt/2) O(dt) A(dt/2) B(dt/2) ("BAOAB"): B = kick with the model forces
  (Cartesian beads), A = exact free ring polymer, O = Ornstein–Uhlenbeck step of the normal-mode
  momenta. With P = 1 this is operation for operation the classical BAOAB Langevin integrator of
  :mod:`biomlff.md.integrators`.
* **Thermostats.** PILE-L (Ceriotti, Parrinello, Markland, Manolopoulos, J. Chem. Phys. 133,
  124104 (2010)): centroid friction 1/τ_centroid, internal modes γ_k = 2 λ ω_k (λ = 1: critical
  damping). TRPMD (Rossi, Ceriotti, Manolopoulos, J. Chem. Phys. 140, 234116 (2014)): the same
  internal-mode friction, centroid not thermostatted (dynamics; λ = 1/2 is a common choice).
* **Model calls.** All P beads are evaluated in one batched call: ``jax.vmap`` of the Potential's
  energy function (forces by autodiff) with one JAX-MD pair list per bead
  (:class:`~biomlff.md.neighborlist.PairLists` states stacked along a leading bead axis); the lists
  are refreshed (inside the compiled step) only when some bead moved more than skin/2, and a pair
  buffer overflow discards and recomputes the step, as in :mod:`biomlff.md.simulation`.
* **Estimators** (physical, at temperature T; d = 3 per atom): potential ⟨V⟩ = (1/P) Σ_j V(q_j);
  primitive kinetic energy K_prim = (3NP/2) k_BT − E_spring/P; centroid-virial kinetic energy
  K_cv = (3N/2) k_BT − (1/2P) Σ_j (q_j − q_c)·F_j (also per atom); the kinetic temperature of the
  bead momenta, Σ_j Σ_i p²/m / (N_f P k_B) with N_f = 3NP (− 3 with the centre-of-mass momentum
  held at zero), which fluctuates around T.

Units: positions Å, energy eV, masses amu, time fs in the settings (ASE time inside), temperature K.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..errors import ConfigError, DataError
from .driver import CHECKPOINT_VERSION, Driver, check_checkpoint, read_checkpoint, system_from_checkpoint  # noqa: F401
from .ensembles.base import fs_to_time, kinetic2, remove_com_momentum
from .neighborlist import PairLists
from .simulation import MDSettings
from .structure import System

THERMOSTATS = ("pile_l", "trpmd")


def hbar_ev_time() -> float:
    """ħ in eV × ASE time units (ħ = 0.6582119569 eV·fs; CODATA values of ASE)."""
    from ase import units as u

    return u._hbar * u.J * u.s


# ---------------------------------------------------------------------------------------------
# small pure functions (NumPy for the host-side constants, JAX inside the step)
def normal_mode_matrix(n_beads: int) -> np.ndarray:
    """Real orthogonal normal-mode matrix C (P, P), float64: q̃_k = Σ_j C_jk q_j, q = C q̃.

    Column 0: 1/√P (the centroid mode, q̃_0 = √P q_c); 1 ≤ k < P/2: √(2/P) cos(2πjk/P);
    k = P/2 (even P): (−1)^j/√P; P/2 < k < P: √(2/P) sin(2πjk/P). Column k has the free
    ring-polymer frequency ω_k = 2 ω_P sin(πk/P) (:func:`free_ring_polymer_frequencies`)."""
    P = int(n_beads)
    if P < 1:
        raise ConfigError(f"the number of beads must be ≥ 1, got {n_beads}")
    j = np.arange(P)[:, None]
    k = np.arange(P)[None, :]
    c = np.empty((P, P))
    c[:, :] = np.sqrt(2.0 / P) * np.cos(2 * np.pi * j * k / P)
    hi = k[0] > P / 2
    c[:, hi] = (np.sqrt(2.0 / P) * np.sin(2 * np.pi * j * k / P))[:, hi]
    c[:, 0] = 1.0 / np.sqrt(P)
    if P % 2 == 0:
        c[:, P // 2] = (-1.0) ** np.arange(P) / np.sqrt(P)
    return c


def free_ring_polymer_frequencies(n_beads: int, omega_p: float) -> np.ndarray:
    """ω_k = 2 ω_P sin(πk/P), k = 0 … P−1 (same unit as ``omega_p``), in the column order of
    :func:`normal_mode_matrix`."""
    k = np.arange(int(n_beads))
    w = 2.0 * omega_p * np.sin(np.pi * k / n_beads)
    w[0] = 0.0
    return w


def ring_polymer_frequency(n_beads: int, kT: float) -> float:
    """ω_P = P k_BT/ħ in 1/ASE-time for kT in eV."""
    return n_beads * kT / hbar_ev_time()


def to_normal_modes(x, C):
    """Bead array (P, …) → normal-mode array (P, …): x̃_k = Σ_j C_jk x_j."""
    import jax.numpy as jnp

    return jnp.einsum("jk,j...->k...", C, x)


def from_normal_modes(xt, C):
    """Normal-mode array (P, …) → bead array (P, …): x_j = Σ_k C_jk x̃_k."""
    import jax.numpy as jnp

    return jnp.einsum("jk,k...->j...", C, xt)


def free_ring_polymer_step(qt, pt, masses, omega_k, t):
    """Exact propagation of the free ring polymer for a time ``t`` (ASE time) in normal modes.

    qt, pt: (P, N, 3) normal-mode positions (Å) and momenta (amu·Å/ASE-time); masses (N,) amu;
    omega_k (P,) free ring-polymer frequencies (1/ASE-time, ω_0 = 0 for the free centroid).
    Each mode rotates in phase space: q ← cos(ωt) q + sin(ωt)/(mω) p, p ← cos(ωt) p − mω sin(ωt) q
    (q ← q + t p/m for ω = 0)."""
    import jax.numpy as jnp

    w = jnp.asarray(omega_k, qt.dtype)
    c = jnp.cos(w * t)[:, None, None]
    s = jnp.sin(w * t)[:, None, None]
    safe = jnp.where(w > 0, w, 1.0)
    s_over_w = jnp.where(w > 0, jnp.sin(w * t) / safe, t)[:, None, None]
    m = jnp.asarray(masses, qt.dtype)[None, :, None]
    mw_s = (w[:, None, None] * s) * m
    q_new = c * qt + s_over_w * pt / m
    p_new = c * pt - mw_s * qt
    return q_new, p_new


def pile_frictions(omega_k, tau_centroid_fs: float | None, pile_lambda: float, thermostat: str) -> np.ndarray:
    """Friction coefficients γ_k (P,) in 1/ASE-time of the normal modes.

    Internal modes: γ_k = 2 λ ω_k (PILE; λ = 1 critical damping of the free ring polymer). Centroid:
    1/τ_centroid for 'pile_l', 0 for 'trpmd' (or τ_centroid None)."""
    g = 2.0 * float(pile_lambda) * np.asarray(omega_k, float)
    if thermostat == "pile_l" and tau_centroid_fs is not None:
        # written as the classical Langevin friction (1/τ in 1/fs, then per ASE time) so that P = 1
        # reproduces biomlff's BAOAB Langevin integrator to the last bit
        g[0] = (1.0 / float(tau_centroid_fs)) / units.ase_time_per_fs
    else:
        g[0] = 0.0
    return g


def spring_energy(q, masses, omega_p):
    """E_spring = Σ_j Σ_i ½ m_i ω_P² |q_ij − q_i,j+1|² (eV) of bead positions q (P, N, 3) Å."""
    import jax.numpy as jnp

    d = q - jnp.roll(q, -1, axis=0)
    m = jnp.asarray(masses, q.dtype)
    return 0.5 * omega_p**2 * jnp.sum(m[None, :, None] * d * d)


def kinetic_primitive(q, masses, omega_p, kT):
    """Primitive kinetic-energy estimator (eV): (3 N P/2) kT − E_spring / P."""
    P, N = q.shape[0], q.shape[1]
    return 1.5 * N * P * kT - spring_energy(q, masses, omega_p) / P


def kinetic_centroid_virial_atoms(q, forces, kT):
    """Centroid-virial kinetic energy per atom (N,) eV: (3/2) kT − (1/2P) Σ_j (q_ij − q_ic)·F_ij
    for bead positions q (P, N, 3) Å (unwrapped) and bead forces (P, N, 3) eV/Å."""
    import jax.numpy as jnp

    P = q.shape[0]
    dq = q - jnp.mean(q, axis=0, keepdims=True)
    return 1.5 * kT - 0.5 / P * jnp.sum(dq * forces, axis=(0, 2))


def kinetic_centroid_virial(q, forces, kT):
    """Centroid-virial kinetic-energy estimator of the whole system (eV)."""
    import jax.numpy as jnp

    return jnp.sum(kinetic_centroid_virial_atoms(q, forces, kT))


def harmonic_kinetic_energy_finite_p(beta_hbar_omega: float, n_beads: int) -> float:
    """Exact ⟨K⟩ (in units of k_BT, per degree of freedom) of the P-bead discretised path integral of
    a harmonic oscillator: (1/2) Σ_k ω²/(ω² + ω_k²), ω_k = 2 ω_P sin(πk/P), ω_P/ω = P/(βħω).
    Equals ⟨V⟩/k_BT; → (βħω/4) coth(βħω/2) for P → ∞ and 1/2 for P = 1."""
    P = int(n_beads)
    x = P / float(beta_hbar_omega)
    wk = 2.0 * x * np.sin(np.pi * np.arange(P) / P)
    return 0.5 * float(np.sum(1.0 / (1.0 + wk**2)))


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PIMD:
    """Path-integral settings (user units).

    beads: P ≥ 1. temperature_K (K). dt_fs (fs). thermostat: 'pile_l' | 'trpmd'.
    tau_centroid_fs: centroid Langevin time constant (fs, PILE-L; None = 100 · dt_fs, as τ_T of
    :class:`~biomlff.md.integrators.Ensemble`). pile_lambda: internal-mode
    friction scale λ (γ_k = 2 λ ω_k). remove_com: hold the centroid's centre-of-mass momentum at zero.
    """

    beads: int = 16
    temperature_K: float = 300.0
    dt_fs: float = 0.5
    thermostat: str = "pile_l"
    tau_centroid_fs: float | None = None
    pile_lambda: float = 1.0
    remove_com: bool = True

    def __post_init__(self):
        if self.tau_centroid_fs is None:
            from .integrators import TAU_T_PER_DT

            object.__setattr__(self, "tau_centroid_fs", TAU_T_PER_DT * float(self.dt_fs))

    def validate(self):
        if int(self.beads) != self.beads or self.beads < 1:
            raise ConfigError(f"the number of beads must be an integer ≥ 1, got {self.beads}")
        if not self.temperature_K > 0:
            raise ConfigError(f"PIMD needs a positive temperature, got {self.temperature_K} K")
        if not self.dt_fs > 0:
            raise ConfigError(f"timestep must be positive, got dt = {self.dt_fs} fs")
        if self.thermostat not in THERMOSTATS:
            raise ConfigError(
                f"unknown PIMD thermostat {self.thermostat!r}; choose one of {', '.join(THERMOSTATS)}"
            )
        if self.thermostat == "pile_l" and not self.tau_centroid_fs > 0:
            raise ConfigError(f"the centroid time constant must be positive, got {self.tau_centroid_fs} fs")
        if self.pile_lambda < 0:
            raise ConfigError(f"the PILE friction scale λ must be ≥ 0, got {self.pile_lambda}")
        return self

    @property
    def kT(self) -> float:
        """k_B·T in eV."""
        return units.kB * self.temperature_K


# ---------------------------------------------------------------------------------------------
def stack_trees(trees):
    """Stack a list of identical pytrees along a new leading axis (bead axis)."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def allocate_bead_lists(pairlists: PairLists, positions, cell=None, capacities: dict | None = None):
    """Per-bead pair-list states for bead positions (P, N, 3) Å, stacked along the bead axis.

    All beads share the same buffer sizes (the largest any bead needs, or ``capacities``)."""
    P = positions.shape[0]
    states = [pairlists.allocate(positions[j], cell, capacities) for j in range(P)]
    if capacities is None and states and pairlists.capacities(states[0]):
        caps: dict = {}
        for st in states:
            for k, v in pairlists.capacities(st).items():
                prev = caps.get(k, v)
                caps[k] = tuple(None if a is None else max(a, b) for a, b in zip(v, prev, strict=True))
        if any(pairlists.capacities(st) != caps for st in states):
            states = [pairlists.allocate(positions[j], cell, caps) for j in range(P)]
    return stack_trees(states)


def bead_capacities(pairlists: PairLists, lists) -> dict:
    """Buffer sizes of stacked bead lists (same as :meth:`PairLists.capacities` of one bead)."""
    import jax

    one = jax.tree_util.tree_map(lambda a: a[0], lists)
    return pairlists.capacities(one)


def make_bead_evaluate(pairlists: PairLists):
    """``evaluate(energy_fn, q (P,N,3), cell, lists) -> (lists, energies (P,), forces (P,N,3))``.

    One batched (vmap) model call for all beads, each with its own pair list. The lists are
    refreshed first, only when some bead moved more than skin/2 (one ``lax.cond`` for all beads,
    so nothing is rebuilt in the common case). Positions handed to the model are wrapped into the
    cell (periodic systems); the beads themselves stay unwrapped."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from .engine import wrap_positions

    periodic = pairlists.periodic

    def one_bead(energy_fn, R, cell, lists):
        pairs, overflow = pairlists.pairs_checked(lists, R, cell)

        def energy(x):
            if not periodic:
                return energy_fn(x, pairs, None)
            return energy_fn(wrap_positions(x, cell), pairs, cell)

        e, g = jax.value_and_grad(energy)(R)
        return e, -g, overflow

    def evaluate(energy_fn, q, cell, lists):
        c = cell if periodic else None
        needs = jax.vmap(lambda ls, r: pairlists.needs_rebuild(ls, r, c))(lists, q)
        lists = lax.cond(
            jnp.any(needs),
            lambda ls: jax.vmap(lambda l1, r: pairlists.update(l1, r, c))(ls, q),
            lambda ls: ls,
            lists,
        )
        e, f, ovf = jax.vmap(one_bead, in_axes=(None, 0, None, 0))(energy_fn, q, c, lists)
        lists = dict(lists, pair_overflow=lists["pair_overflow"] | ovf)
        return lists, e, f

    return evaluate


# ---------------------------------------------------------------------------------------------
class RingPolymerIntegrator:
    """State and step of ring-polymer MD for ``masses`` (amu) with the settings ``pimd``.

    The state is a flat dict: R, P, F (P_beads, N, 3) Cartesian bead positions (Å, unwrapped),
    momenta, forces (eV/Å); V (P,) bead energies (eV); heat (eV) exchanged with the thermostat;
    key (PRNG); step. ``evaluate(q, cell, lists) -> (lists, V, F)`` is the batched model call."""

    def __init__(self, pimd: PIMD, masses, periodic: bool):
        self.pimd = pimd.validate()
        self.masses = np.asarray(masses, dtype=float)
        self.n = len(self.masses)
        self.P = int(pimd.beads)
        self.periodic = periodic
        self.dt = fs_to_time(pimd.dt_fs)
        self.kT = pimd.kT
        self.omega_p = ring_polymer_frequency(self.P, self.kT)
        self.omega_k = free_ring_polymer_frequencies(self.P, self.omega_p)
        self.C = normal_mode_matrix(self.P)
        self.gamma = pile_frictions(self.omega_k, pimd.tau_centroid_fs, pimd.pile_lambda, pimd.thermostat)
        self.remove_com = bool(pimd.remove_com) and self.n > 1
        self.dof = 3 * self.n * self.P - (3 if self.remove_com else 0)

    def init(self, evaluate, q, p, cell, lists, key, dtype):
        """Initial state from bead positions q and momenta p (P, N, 3), cell (Å or None), the stacked
        pair-list state and a PRNG key; evaluates the model once on every bead."""
        import jax.numpy as jnp

        R = jnp.asarray(q, dtype)
        Pm = jnp.asarray(p, dtype)
        c = None if cell is None else jnp.asarray(cell, dtype)
        lists, V, F = evaluate(R, c, lists)
        st = {
            "R": R,
            "P": Pm,
            "F": F,
            "V": V,
            "heat": jnp.zeros((), dtype),
            "key": jnp.asarray(key),
            "step": jnp.zeros((), jnp.int32),
        }
        if c is not None:
            st["cell"] = c
        return st, lists

    def _remove_com(self, p, m):
        """Total momentum (all beads) removed: only the centroid's centre-of-mass momentum changes."""
        import jax.numpy as jnp

        v = jnp.sum(p, axis=(0, 1)) / (jnp.sum(m) * self.P)
        return p - m[None, :, None] * v[None, None, :]

    def step(self, st, lists, evaluate):
        """One BAOAB step (see module docstring); returns (state, lists)."""
        import jax
        import jax.numpy as jnp

        dtype = st["R"].dtype
        m = jnp.asarray(self.masses, dtype)
        C = jnp.asarray(self.C, dtype)
        h = 0.5 * self.dt
        gamma = jnp.asarray(self.gamma, dtype)
        c1 = jnp.exp(-gamma * self.dt)
        c2 = jnp.sqrt((self.P * self.kT) * (1.0 - c1**2))
        P = st["P"] + h * st["F"]
        qt = to_normal_modes(st["R"], C)
        pt = to_normal_modes(P, C)
        qt, pt = free_ring_polymer_step(qt, pt, m, self.omega_k, h)
        key, sub = jax.random.split(st["key"])
        k2_before = kinetic2(pt.reshape(-1, 3), jnp.tile(m, self.P))
        noise = jax.random.normal(sub, pt.shape, dtype=dtype)
        pt = c1[:, None, None] * pt + c2[:, None, None] * jnp.sqrt(m)[None, :, None] * noise
        if self.remove_com:
            pt = pt.at[0].set(remove_com_momentum(pt[0], m))
        heat = st["heat"] + 0.5 * (kinetic2(pt.reshape(-1, 3), jnp.tile(m, self.P)) - k2_before)
        qt, pt = free_ring_polymer_step(qt, pt, m, self.omega_k, h)
        R = from_normal_modes(qt, C)
        P = from_normal_modes(pt, C)
        lists, V, F = evaluate(R, st.get("cell"), lists)
        P = P + h * F
        if self.remove_com:
            P = self._remove_com(P, m)
        new = dict(st, R=R, P=P, F=F, V=V, heat=heat, key=key, step=st["step"] + 1)
        return new, lists

    def observables(self, st):
        """Scalars (eV, K, Å): e_pot = ⟨V⟩_beads, k_cv, k_prim, e_tot = k_cv + e_pot, e_spring,
        conserved (H_P − heat), temperature (bead momenta), temperature_centroid, bead_rg (RMS
        distance of the beads from their centroid)."""
        import jax.numpy as jnp

        R, F = st["R"], st["F"]
        dtype = R.dtype
        m = jnp.asarray(self.masses, dtype)
        k2 = jnp.sum(st["P"] ** 2 / m[None, :, None])
        e_spring = spring_energy(R, m, self.omega_p)
        vbar = jnp.mean(st["V"])
        kcv = kinetic_centroid_virial(R, F, self.kT)
        pc = jnp.mean(st["P"], axis=0)
        dof_c = 3 * self.n - (3 if self.remove_com else 0)
        dq = R - jnp.mean(R, axis=0, keepdims=True)
        return {
            "e_pot": vbar,
            "k_cv": kcv,
            "k_prim": kinetic_primitive(R, m, self.omega_p, self.kT),
            "e_tot": kcv + vbar,
            "e_spring": e_spring,
            "conserved": 0.5 * k2 + e_spring + jnp.sum(st["V"]) - st["heat"],
            "temperature": k2 / (self.dof * self.P * units.kB),
            "temperature_centroid": kinetic2(pc, m) / (max(dof_c, 1) * units.kB),
            "bead_rg": jnp.sqrt(jnp.mean(jnp.sum(dq * dq, axis=-1))),
        }

    def atom_observables(self, st):
        """Per-atom arrays: k_cv_atoms (N,) eV."""
        return {"k_cv_atoms": kinetic_centroid_virial_atoms(st["R"], st["F"], self.kT)}


# ---------------------------------------------------------------------------------------------
class PIMDSimulation(Driver):
    """A ring-polymer MD run of ``potential`` for ``system``, in the run loop shared with classical MD
    (:mod:`biomlff.md.driver`: compiled blocks of steps, pair-list overflow handling, log table,
    trajectories, checkpoints and exact restarts).

    Outputs (``settings.output`` = ``run.h5``): ``run.h5`` centroid trajectory (positions,
    velocities, estimators as observables), ``run.beads.h5`` bead trajectory (P frames per stored
    step, bead j in frame order, observable ``bead``; frame-averaged structural analysis such as
    ``biomlff analyze rdf`` then gives the path-integral average), ``run.log``, ``run.chk.npz``.
    Beads start at the structure's positions (a collapsed ring polymer); bead momenta are drawn from
    Maxwell–Boltzmann at P·T; if the structure carries velocities, they become the centroid
    velocities (internal modes still drawn at P·T).
    Set ``write_beads = False`` to skip the bead trajectory.
    """

    write_beads: bool = True
    what = "the path-integral simulation"
    checkpoint_kind = "pimd"
    wrong_checkpoint = (
        "{path} is a classical MD checkpoint, not a PIMD one; start PIMD from a structure "
        "(or resume it with 'biomlff md nve|nvt|npt')"
    )

    def __init__(
        self, potential, system: System, pimd: PIMD, settings: MDSettings | None = None, _restart=None
    ):
        self.pimd = pimd.validate()
        super().__init__(potential, system, settings or MDSettings(), _restart)

    @property
    def n_beads(self) -> int:
        return int(self.pimd.beads)

    @property
    def dt_fs(self) -> float:
        return self.pimd.dt_fs

    def _build(self):
        import jax
        import jax.numpy as jnp

        s, sysm = self.settings, self.system
        cell = self._bind_model(make_bead_evaluate)
        self.integrator = RingPolymerIntegrator(self.pimd, sysm.masses, self.periodic)
        dt = self.dtype
        P = self.n_beads
        c = None if cell is None else jnp.asarray(cell, dt)

        def init(efn, r, p, cc, ls, k):
            return self.integrator.init(self._bound_evaluate(efn), r, p, cc, ls, k, dt)

        rs = self._restart
        if rs is None:
            key = jax.random.PRNGKey(s.seed)
            key, vkey = jax.random.split(key)
            m = np.asarray(sysm.masses)
            q = jnp.broadcast_to(jnp.asarray(sysm.positions, dt), (P, sysm.n_atoms, 3))
            sd = jnp.sqrt(jnp.asarray(m, dt) * (P * self.pimd.kT))[None, :, None]
            if sysm.velocities is not None:
                # centroid velocities from the file; internal modes thermal at P·T
                v = jnp.asarray(sysm.velocities * m[:, None] / units.ase_time_per_fs, dt)
                p = jnp.broadcast_to(v, (P, sysm.n_atoms, 3))
                if P > 1:
                    C = jnp.asarray(self.integrator.C, dt)
                    pt = sd * jax.random.normal(vkey, (P, sysm.n_atoms, 3), dtype=dt)
                    p = p + from_normal_modes(pt.at[0].set(0.0), C)
                self.messages.append("centroid velocities taken from the structure file")
            else:
                p = sd * jax.random.normal(vkey, (P, sysm.n_atoms, 3), dtype=dt)
                if self.integrator.remove_com:
                    p = self.integrator._remove_com(p, jnp.asarray(m, dt))
            lists = allocate_bead_lists(self.pairlists, q, c)
            self.state, self.lists = jax.jit(init)(self._energy_fn, q, p, c, lists, key)
            self.start_step = 0
        else:
            meta, saved, lref = rs["meta"], rs["state"], rs["lists"]
            ref_cell = None if "ref_cell" not in lref else jnp.asarray(lref["ref_cell"][0])
            lists = self._restored_lists(rs, ref_cell)
            args = (
                self._energy_fn,
                jnp.asarray(saved["R"], dt),
                jnp.asarray(saved["P"], dt),
                c,
                lists,
                jnp.asarray(saved["key"]),
            )
            fresh, _ = jax.eval_shape(init, *args)
            if set(fresh) != set(saved) or any(np.shape(fresh[k]) != np.shape(saved[k]) for k in fresh):
                raise DataError("the PIMD checkpoint does not match this system / number of beads")
            self.state = {k: jnp.asarray(saved[k], dtype=fresh[k].dtype) for k in fresh}
            self.lists = lists
            self.start_step = int(meta["step"])
        self._compile()
        self._atom_observe = jax.jit(self.integrator.atom_observables)

    def _bound_evaluate(self, energy_fn):
        from functools import partial

        return partial(self._evaluate, energy_fn)

    # --- hooks of the shared loop -------------------------------------------------------------------
    def _overflowed(self, lists):
        import jax
        import jax.numpy as jnp

        return jnp.any(jax.vmap(self.pairlists.overflowed)(lists))

    def _allocate(self, positions, cell, capacities=None):
        return allocate_bead_lists(self.pairlists, positions, cell, capacities=capacities)

    def _capacities(self, lists):
        return bead_capacities(self.pairlists, lists)

    def _meta(self) -> dict:
        return {"kind": "pimd", "beads": self.n_beads, "pimd_settings": asdict(self.pimd)}

    # --- observables ---------------------------------------------------------------------------
    def observables(self) -> dict:
        """Current estimators: e_pot, k_cv, k_prim, e_tot, e_spring, conserved (eV), temperature,
        temperature_centroid (K), bead_rg (Å)."""
        with self._ctx():
            return {k: float(v) for k, v in self._observe(self.state).items()}

    def kinetic_cv_atoms(self) -> np.ndarray:
        """Centroid-virial kinetic energy per atom (N,) eV of the current configuration."""
        with self._ctx():
            return np.asarray(self._atom_observe(self.state)["k_cv_atoms"], float)

    def bead_positions(self) -> np.ndarray:
        """(P, N, 3) bead positions, Å (unwrapped)."""
        return np.asarray(self.state["R"], float)

    def centroid(self) -> np.ndarray:
        """(N, 3) centroid positions, Å."""
        return self.bead_positions().mean(axis=0)

    def bead_velocities(self) -> np.ndarray:
        """(P, N, 3) bead velocities, Å/fs."""
        m = np.asarray(self.system.masses)[None, :, None]
        return np.asarray(self.state["P"], float) / m * units.ase_time_per_fs

    # --- checkpoints ------------------------------------------------------------------------------
    @classmethod
    def resume(
        cls,
        checkpoint,
        potential,
        pimd: PIMD,
        settings: MDSettings | None = None,
        system: System | None = None,
    ) -> PIMDSimulation:
        """Continue from ``checkpoint`` (same atoms, same number of beads, same precision)."""
        rs = cls.load_checkpoint(checkpoint)
        meta = rs["meta"]
        settings = settings or MDSettings()
        check_checkpoint(rs, checkpoint, potential, settings, system)
        if int(meta["beads"]) != int(pimd.beads):
            raise ConfigError(
                f"checkpoint {checkpoint} has {meta['beads']} beads; resume with --beads {meta['beads']}"
            )
        positions = np.asarray(rs["state"]["R"], float).mean(axis=0)
        return cls(
            potential, system_from_checkpoint(rs, positions, checkpoint, system), pimd, settings, _restart=rs
        )

    # --- trajectories ---------------------------------------------------------------------------
    def bead_trajectory_path(self) -> Path | None:
        """``<output stem>.beads<suffix>`` (None without an output)."""
        traj = self.settings.paths()[0]
        return None if traj is None else traj.with_name(traj.stem + ".beads" + traj.suffix)

    def _open_writers(self, resumed: bool) -> list:
        from ..data.trajectory import open_trajectory

        paths = [self.settings.paths()[0]] + ([self.bead_trajectory_path()] if self.write_beads else [])
        truncate = self.step if resumed else None
        return [
            open_trajectory(p, self.system.atomic_numbers, self.periodic, resumed, truncate) for p in paths
        ]

    def _write_frames(self, writers, obs):
        t = self.step * self.pimd.dt_fs
        cell = self.cell()
        q, v = self.bead_positions(), self.bead_velocities()
        per_atom = {"k_cv_atoms": self.kinetic_cv_atoms()}
        writers[0].write(self.step, t, q.mean(axis=0), v.mean(axis=0), cell, obs, per_atom=per_atom)
        if len(writers) < 2:
            return
        V = np.asarray(self.state["V"], float)
        for j in range(self.n_beads):
            writers[1].write(self.step, t, q[j], v[j], cell, {"bead": j, "e_pot": V[j]})

    # --- log table ------------------------------------------------------------------------------
    def _value_columns(self):
        return [
            ("E_pot", "{:>14.6f}", 14),
            ("K_cv", "{:>12.6f}", 12),
            ("K_prim", "{:>12.6f}", 12),
            ("E_tot", "{:>14.6f}", 14),
            ("conserved", "{:>14.6f}", 14),
            ("T_K", "{:>8.2f}", 8),
            ("Rg_A", "{:>8.4f}", 8),
        ]

    def _row(self, obs) -> dict:
        return {
            "E_pot": obs["e_pot"],
            "K_cv": obs["k_cv"],
            "K_prim": obs["k_prim"],
            "E_tot": obs["e_tot"],
            "conserved": obs["conserved"],
            "T_K": obs["temperature"],
            "Rg_A": obs["bead_rg"],
        }
