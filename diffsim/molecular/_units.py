"""Unit conversions for ASE's unit system (Angstrom, eV, amu), which diffsim follows.

With lengths in Angstrom, energies in eV and masses in amu, the natural time unit is
sqrt(amu Angstrom^2 / eV) = 10.1805 fs; velocities are Angstrom per that unit. These are
ASE's own values (`ase.units`, CODATA 2014), so a step `dt = 0.5 * FS` in diffsim equals
`0.5 * ase.units.fs` in ASE.
"""

FS: float = 0.09822694788464063
"""One femtosecond in the time unit of (Angstrom, eV, amu): `dt = 0.5 * FS` is 0.5 fs."""

TIME_UNIT_FS: float = 1.0 / FS
"""The time unit sqrt(amu Angstrom^2 / eV) in femtoseconds (about 10.18)."""

KB: float = 8.617330337217213e-05
"""Boltzmann's constant in eV/K: `kT = KB * 300.0` is room temperature in eV."""
