"""Tests of the analysis pillar (observables, plots, membranes, peptides); ``analysis_builders.py`` builds
their synthetic trajectories.
"""

import sys
from pathlib import Path

# the builders of synthetic trajectories sit beside these tests
sys.path.insert(0, str(Path(__file__).parent))
