"""The composition root: the home with its stores wired (Home), and the services `fswl serve` runs (services)."""

from fswl.app.home import Home, default_home

__all__ = ["Home", "default_home"]
