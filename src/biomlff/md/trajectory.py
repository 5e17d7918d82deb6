"""MD trajectory writers: they live in :mod:`biomlff.data.trajectory` (trajectory I/O belongs to the data
pillar, so that analysis reads what MD writes without importing MD); this module keeps the former import
path."""

from ..data.trajectory import (  # noqa: F401
    PS_PER_FS,
    ExtXYZWriter,
    Frame,
    H5MDWriter,
    TrajectoryWriter,
    open_trajectory,
    trajectory_format,
)
