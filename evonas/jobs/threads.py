"""The CPU threads torch may use in a job."""

from __future__ import annotations

from evonas.errors import ConfigError


def check_threads(threads: int | None) -> None:
    """Refuse a thread count below 1 (None keeps torch's default)."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"The 'threads' parameter must be an integer >= 1; got {threads!r}", param="threads")


def use_threads(threads: int | None) -> None:
    """Set torch's intra-op threads when ``threads`` is given."""
    if threads:
        import torch

        torch.set_num_threads(threads)
