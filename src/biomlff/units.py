"""Units of biomlff: one place for every conversion.

Internal units: energy eV, length Å, charge e, time fs, mass amu, temperature K, pressure eV/Å³.
Conversion factors come from ASE's CODATA (2014 in ase 3.29) so that they agree with ASE to the
last digit. ``to_ev[unit]`` / ``to_angstrom[unit]`` map unit strings found in dataset files.
"""

from ase import units as _u

# --- energies (value in eV of one unit)
eV = 1.0
kcal_mol = _u.kcal / _u.mol  # eV per (kcal/mol)
kJ_mol = _u.kJ / _u.mol  # eV per (kJ/mol)
Hartree = _u.Hartree  # eV per Hartree
Ry = _u.Ry
meV = 1e-3

# --- lengths (value in Å of one unit)
Angstrom = 1.0
Bohr = _u.Bohr  # Å per Bohr
#: Bohr radius (Å) as the published SO3LR's ZBL initialisation writes it (not ASE's CODATA value)
Bohr_so3lr = 0.5291772105638411
nm = 10.0

# --- time, temperature, pressure, misc
fs = 1.0  # internal time unit
ps = 1000.0  # fs per ps
ps_per_fs = 1.0 / ps  # ps per fs (the same double as the literal 1e-3)
kB = _u.kB  # eV/K
atm = 1.01325 * _u.bar  # eV/Å^3 per atm
bar = _u.bar  # eV/Å^3 per bar
GPa = _u.GPa
Debye = _u.Debye  # e·Å per Debye
pN = 1e-12 * _u.J / _u.m  # eV/Å per piconewton (steered MD forces)
alpha_fs = _u.alpha  # fine-structure constant
# Coulomb constant k_e in eV·Å/e² as fixed in SO3LR (spec §1.7): keep the exact literal.
k_e = 14.399645351950548

#: time conversion: ASE time unit per fs (ASE internal time is Å·sqrt(amu/eV))
ase_time_per_fs = _u.fs

# --- spectroscopy and transport (analysis pillar)
#: wavenumber in cm⁻¹ of a frequency of 1 fs⁻¹ (1e15 Hz / c in cm/s)
invcm_per_invfs = 1e15 / (_u._c * 100.0)
#: a diffusion coefficient of 1 Å²/fs in m²/s (1e-20 m² / 1e-15 s)
m2_s_per_A2_fs = 1e-5

to_ev = {
    "ev": eV,
    "mev": meV,
    "kcal/mol": kcal_mol,
    "kcal mol-1": kcal_mol,
    "kj/mol": kJ_mol,
    "hartree": Hartree,
    "ha": Hartree,
    "au": Hartree,
    "ry": Ry,
}

to_angstrom = {
    "ang": Angstrom,
    "angstrom": Angstrom,
    "a": Angstrom,
    "å": Angstrom,
    "bohr": Bohr,
    "au": Bohr,
    "nm": nm,
    "pm": 0.01,
}

#: fs per unit of time, for unit strings in trajectory files (e.g. H5MD "ps")
to_fs = {"fs": fs, "ps": ps, "ns": 1e6, "s": 1e15, "as": 1e-3}


def energy_factor(unit: str) -> float:
    """Factor converting an energy in ``unit`` (e.g. 'kcal/mol', 'Hartree') to eV."""
    key = str(unit).strip().lower()
    if key not in to_ev:
        from .errors import DataError

        raise DataError(f"unknown energy unit {unit!r}; known: {sorted(to_ev)}")
    return to_ev[key]


def length_factor(unit: str) -> float:
    """Factor converting a length in ``unit`` (e.g. 'Ang', 'bohr') to Å."""
    key = str(unit).strip().lower()
    if key not in to_angstrom:
        from .errors import DataError

        raise DataError(f"unknown length unit {unit!r}; known: {sorted(to_angstrom)}")
    return to_angstrom[key]


def guess_observable_unit(name: str) -> str:
    """Unit of a stored per-frame observable guessed from its name (files store no units for
    them): 'eV' for names with 'energy', 'K' for names with 'temp', '' otherwise."""
    return "eV" if "energy" in name else "K" if "temp" in name else ""
