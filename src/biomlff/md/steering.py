"""Steered MD: constant external forces, pulling forces between atom pairs, harmonic tethers and
harmonic distance restraints, as one external potential added to the model's energy.

All are conservative, so the integrators' conserved quantity includes them; the work the external
forces do on the system, W = ∫ F_ext · dr, is accumulated step by step (trapezoid rule) and logged.
Units: forces eV/Å (see :data:`biomlff.units.pN` for pN), force constants eV/Å², lengths Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Steering:
    """External forces and restraints (atom indices 0-based).

    constant_forces: [(atom, (fx, fy, fz) eV/Å)] — E = −F·r (positions unwrapped).
    pulls: [(a, b, f eV/Å)] — a force f pushing b away from a along the a→b line (and −f on a),
        E = −f·|r_b − r_a| (f < 0 pulls them together). The thesis's "±10 pN between the termini".
    tethers: [(atom, (x, y, z) Å, k eV/Å²)] — E = ½ k |r − r0|².
    distance_restraints: [(a, b, r0 Å, k eV/Å²)] — E = ½ k (|r_b − r_a| − r0)².
    """

    constant_forces: tuple = field(default_factory=tuple)
    pulls: tuple = field(default_factory=tuple)
    tethers: tuple = field(default_factory=tuple)
    distance_restraints: tuple = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return bool(self.constant_forces or self.pulls or self.tethers or self.distance_restraints)

    def validate(self, n_atoms: int) -> Steering:
        def chk(a, what):
            if not (0 <= int(a) < n_atoms):
                raise ConfigError(f"{what}: atom index {a} out of range for {n_atoms} atoms")

        for a, f in self.constant_forces:
            chk(a, "constant force")
            if np.shape(f) != (3,):
                raise ConfigError(f"constant force on atom {a} must be a 3-vector (eV/Å), got {f!r}")
        for a, b, _ in self.pulls:
            chk(a, "pull")
            chk(b, "pull")
            if a == b:
                raise ConfigError(f"pull between atom {a} and itself")
        for a, r0, k in self.tethers:
            chk(a, "tether")
            if np.shape(r0) != (3,) or k < 0:
                raise ConfigError(f"tether on atom {a} needs a 3-vector anchor (Å) and k ≥ 0 (eV/Å²)")
        for a, b, r0, k in self.distance_restraints:
            chk(a, "distance restraint")
            chk(b, "distance restraint")
            if r0 < 0 or k < 0:
                raise ConfigError(f"distance restraint {a}-{b} needs r0 ≥ 0 Å and k ≥ 0 eV/Å²")
        return self

    @classmethod
    def from_dict(cls, d: dict | None) -> Steering:
        """From a config mapping with the field names above (lists of lists)."""
        if not d:
            return cls()
        unknown = set(d) - {"constant_forces", "pulls", "tethers", "distance_restraints"}
        if unknown:
            raise ConfigError(f"unknown steering keys {sorted(unknown)}")
        return cls(
            constant_forces=tuple((int(a), tuple(map(float, f))) for a, f in d.get("constant_forces", [])),
            pulls=tuple((int(a), int(b), float(f)) for a, b, f in d.get("pulls", [])),
            tethers=tuple((int(a), tuple(map(float, r)), float(k)) for a, r, k in d.get("tethers", [])),
            distance_restraints=tuple(
                (int(a), int(b), float(r), float(k)) for a, b, r, k in d.get("distance_restraints", [])
            ),
        )

    def energy_fn(self):
        """``f(positions (N,3) Å, cell | None) -> E_ext (eV)`` (pure JAX), or None when inactive."""
        if not self.active:
            return None
        import jax.numpy as jnp

        from ..geometry import minimum_image

        cf = [(int(a), np.asarray(f, float)) for a, f in self.constant_forces]
        pulls = [(int(a), int(b), float(f)) for a, b, f in self.pulls]
        teth = [(int(a), np.asarray(r, float), float(k)) for a, r, k in self.tethers]
        dres = [(int(a), int(b), float(r0), float(k)) for a, b, r0, k in self.distance_restraints]

        def dist(R, a, b, cell):
            d = minimum_image(R[b] - R[a], cell)
            return jnp.sqrt(jnp.sum(d * d))

        def fn(R, cell=None):
            e = jnp.zeros((), R.dtype)
            for a, f in cf:
                e = e - jnp.dot(jnp.asarray(f, R.dtype), R[a])
            for a, b, f in pulls:
                e = e - f * dist(R, a, b, cell)
            for a, r0, k in teth:
                d = R[a] - jnp.asarray(r0, R.dtype)
                e = e + 0.5 * k * jnp.sum(d * d)
            for a, b, r0, k in dres:
                e = e + 0.5 * k * (dist(R, a, b, cell) - r0) ** 2
            return e

        return fn


def _spec_values(item, n: int, what: str) -> list[float]:
    """The ``n`` numbers of one steering spec ('A,B,F' or already a list); ConfigError otherwise."""
    vals = item if isinstance(item, (list, tuple)) else str(item).split(",")
    if len(vals) != n:
        raise ConfigError(f"{what} needs {n} comma-separated values, got {item!r}")
    return [float(v) for v in vals]


def parse_steering(pulls=None, forces=None, tethers=None, positions=None, extra=None) -> Steering:
    """Steering from command-line specs (strings 'A,B,F' or lists of numbers):

    * ``pulls``: 'A,B,F_PN', a force of F pN pushing atoms A and B apart (negative: together);
    * ``forces``: 'ATOM,FX,FY,FZ', a constant force in eV/Å;
    * ``tethers``: 'ATOM,K', a harmonic tether of K eV/Å² to the atom's place in ``positions``
      (N, 3) Å;
    * ``extra``: a config mapping (:meth:`Steering.from_dict`) whose terms are added.
    """
    from .. import units

    pull = tuple(
        (int(a), int(b), f * units.pN)
        for a, b, f in (_spec_values(x, 3, "--pull A,B,F_pN") for x in pulls or [])
    )
    force = tuple(
        (int(v[0]), tuple(v[1:])) for v in (_spec_values(x, 4, "--force ATOM,FX,FY,FZ") for x in forces or [])
    )
    specs = [_spec_values(x, 2, "--tether ATOM,K") for x in tethers or []]
    n_atoms = 0 if positions is None else len(positions)
    if any(not 0 <= int(a) < n_atoms for a, _ in specs):
        raise ConfigError(f"--tether atom index out of range for {n_atoms} atoms")
    tether = tuple((int(a), tuple(np.asarray(positions[int(a)], float)), k) for a, k in specs)
    more = Steering.from_dict(extra)
    return Steering(
        constant_forces=force + more.constant_forces,
        pulls=pull + more.pulls,
        tethers=tether + more.tethers,
        distance_restraints=more.distance_restraints,
    )
