"""biomlff.calculators (see docs/architecture.md)."""
