"""The version of evonas (one place: the package and the runs it writes read it here)."""

__version__ = "0.2.0"
