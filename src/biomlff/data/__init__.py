"""biomlff.data (see docs/architecture.md)."""
