"""biomlff.analysis (see docs/architecture.md)."""
