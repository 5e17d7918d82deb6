"""biomlff.md (see docs/architecture.md)."""
