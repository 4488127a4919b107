"""jobchain: a Kubernetes operator that runs Workflows as chains of Jobs.

`__version__` is read from the installed package's metadata, whose one source is pyproject.toml's
`version`: nothing else states the version, so the two cannot disagree.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jobchain")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
