"""The package version, alone in a module so that nothing imports the package root to read it."""

__version__ = "0.1.0"
