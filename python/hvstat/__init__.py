"""hvstat: metrics for Linux hypervisor nodes (the node, its containers, its VMs)."""

from hvstat._native import __version__

__all__ = ["__version__"]
