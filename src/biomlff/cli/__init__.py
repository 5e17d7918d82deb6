"""Thin command-line layer: argument parsing and printing only; the work is done by the pillars."""
