"""calsync: connects booking-platform schedules to external calendars."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("calsync")  # the installed package's, from pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+source"
