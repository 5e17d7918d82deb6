"""biomlff.labels (see docs/architecture.md)."""
