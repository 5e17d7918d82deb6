"""biomlff.so3lr (see docs/architecture.md)."""
