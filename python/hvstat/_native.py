"""The one place that imports the Rust extension, so an import problem has one clear message."""

from __future__ import annotations

try:
    from hvstat._core import (
        ConfigError,
        ContainerSampler,
        CoreError,
        NodeSampler,
        ProcessSampler,
        VmSampler,
        __version__,
    )
except ImportError as e:  # pragma: no cover - only on a broken install
    raise ImportError(
        f"hvstat's compiled core (hvstat._core) could not be imported: {e}. "
        "Reinstall with `pip install .` (needs a Rust toolchain) or from a wheel."
    ) from e

__all__ = ["ConfigError", "ContainerSampler", "CoreError", "NodeSampler", "ProcessSampler", "VmSampler", "__version__"]
