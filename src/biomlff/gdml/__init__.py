"""biomlff.gdml (see docs/architecture.md)."""
