"""The package version, in the foundation layer: provenance, the CLI and the gate read it from here (importing
the package root would pull in its lazy front-end exports)."""

__version__ = "0.1.0"
