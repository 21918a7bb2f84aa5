"""Helpers shared by the package's modules: progress bars, parameter checks, provenance, flags."""
