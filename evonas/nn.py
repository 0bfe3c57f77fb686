"""Choice points in a user's own PyTorch model.

Mark each place where the search may pick one of several modules with a
:class:`Choice`::

    from torch import nn
    from evonas.nn import Choice

    class Net(nn.Module):
        def __init__(self, in_channels=1, num_classes=10):
            super().__init__()
            self.stem = nn.Conv2d(in_channels, 16, 3, padding=1)
            self.block = Choice({"conv3": nn.Conv2d(16, 16, 3, padding=1),
                                 "conv5": nn.Conv2d(16, 16, 5, padding=2),
                                 "skip": nn.Identity()}, label="block")
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

        def forward(self, x):
            return self.head(self.block(self.stem(x)))

A function returning such a model is a search space (``--space net.py:build``): its
model is the supernet, each ``Choice`` in module order is one dimension of the
architecture, and evonas sets which option runs.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from torch import nn

from evonas.errors import ConfigError

__all__ = ["Choice"]


def _option_name(module: nn.Module, taken: set[str]) -> str:
    base = type(module).__name__.lower()
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}{i}"
    return name


class Choice(nn.Module):
    """One of several modules runs: the option the architecture names.

    ``options`` is a dict name -> module, or a list of modules (named after their
    class, ``conv2d``, ``conv2d2``, ...). Every option must map the choice's input to
    an output of the same shape; evonas checks this when it builds the space.
    ``label`` names the choice in architecture strings, Optuna parameters and reports
    (default: where the choice sits in the model, such as ``blocks.0.op``).

    Called outside a search, the choice runs its first option (or the one set with
    :meth:`select`).
    """

    def __init__(self, options: Mapping[str, nn.Module] | Sequence[nn.Module], label: str | None = None) -> None:
        super().__init__()
        if isinstance(options, Mapping):
            items = list(options.items())
        elif isinstance(options, Sequence) and not isinstance(options, (str, bytes)):
            taken: set[str] = set()
            items = []
            for module in options:
                name = _option_name(module, taken) if isinstance(module, nn.Module) else repr(module)
                taken.add(name)
                items.append((name, module))
        else:
            raise ConfigError(f"The 'options' parameter of Choice must be a dict of name -> module or a list of "
                              f"modules; got {type(options).__name__}.", param="options")
        if len(items) < 1:
            raise ConfigError("The 'options' parameter of Choice needs at least one module; got none.", param="options")
        for name, module in items:
            if not isinstance(name, str) or not name or any(c in name for c in ",=\n\t "):
                raise ConfigError(f"The 'options' parameter of Choice must name each option with a non-empty string "
                                  f"without commas, '=' or spaces; got {name!r}.", param="options")
            if not isinstance(module, nn.Module):
                raise ConfigError(f"The 'options' parameter of Choice must hold torch.nn.Module values; option "
                                  f"{name!r} is a {type(module).__name__}.", param="options")
        if label is not None and (not isinstance(label, str) or not label or any(c in label for c in ",=\n\t ")):
            raise ConfigError(f"The 'label' parameter of Choice must be a non-empty string without commas, '=' or "
                              f"spaces; got {label!r}.", param="label")
        self.options = nn.ModuleDict(items)
        self.label = label
        self.active = items[0][0]  # the name of the option that runs

    @property
    def names(self) -> tuple[str, ...]:
        """The option names, in order."""
        return tuple(self.options.keys())

    def select(self, name: str) -> "Choice":
        """Make option ``name`` the one that runs; returns the choice."""
        if name not in self.options:
            raise ConfigError(f"The 'name' parameter of Choice.select must be one of {', '.join(self.names)}; "
                              f"got {name!r}.", param="name")
        self.active = name
        return self

    def forward(self, *args, **kwargs):
        return self.options[self.active](*args, **kwargs)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active!r}"
