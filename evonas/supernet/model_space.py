"""A search space made from a user's model: every :class:`~evonas.nn.Choice` in it is a dimension.

:class:`ModelSpace` calls the user's factory once, runs the model on one zero image
of the data's shape, and measures with ``torch.utils.flop_counter`` the
multiply-accumulates and the parameters of every option of every choice at the
choice's input, and of the fixed rest. A network's cost is the fixed part plus its
options, which is exactly what the exported module counts; the space checks this on
a second architecture when it is built.

The architecture string names each choice's option, ``label=option`` joined by
commas in module order (``block1=conv3,block2=skip``); a string of option indices
(``02``) is also read when every choice has at most ten options.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any, Callable

import torch
from torch import nn

from search_spaces import Arch, ArchStringError, Cost, Dim, Space

from evonas.errors import ConfigError
from evonas.nn import Choice

FACTORY_ARGS = ("in_channels", "num_classes", "image_size")  # what a factory may take, filled from the data


def _shape(value: Any) -> Any:
    """The shape of a tensor output (or a nested tuple/list of them), for comparison and messages."""
    if torch.is_tensor(value):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shape(v) for v in value)
    return type(value).__name__


def _detached(args: tuple) -> tuple:
    """A copy of a call's arguments that later in-place operations of the model cannot change."""
    return tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args)


def _count(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Multiply-accumulates of ``fn()`` (half of torch's FLOP count) and its result."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = fn()
    return counter.get_total_flops() // 2, out


def _params(module: nn.Module, exclude: set[int] = frozenset()) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad and id(p) not in exclude)


def call_factory(factory: Callable[..., Any], kwargs: dict[str, Any], ref: str) -> nn.Module:
    """``factory`` called with the keyword arguments among ``kwargs`` that it accepts; an nn.Module or one error."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: pass nothing
        params = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in kwargs.items() if takes_all or k in params}
    try:
        model = factory(**given)
    except Exception as exc:  # the user's code
        raise ConfigError(f"The 'space' parameter names {ref!r}, whose factory raised {type(exc).__name__}: {exc} "
                          f"(called with {given}); fix the factory.", param="space") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"The 'space' parameter names {ref!r}, which returned a {type(model).__name__}, not a "
                          "torch.nn.Module; a space factory returns the model with its Choice points.", param="space")
    return model


def factory_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    """The defaults the factory's signature gives to in_channels, num_classes and image_size."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in params.items() if k in FACTORY_ARGS and p.default is not inspect.Parameter.empty}


def find_choices(model: nn.Module, ref: str) -> list[tuple[str, Choice]]:
    """(module path, choice) of every Choice in module order; refuses none, nested ones and repeated labels."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, Choice)]
    if not found:
        raise ConfigError(f"The 'space' parameter names {ref!r}, whose model has no evonas.nn.Choice; mark at least "
                          "one place with Choice({...}) so that there is something to search.", param="space")
    for name, choice in found:
        inner = [n for n, m in choice.options.named_modules() if isinstance(m, Choice)]
        if inner:
            raise ConfigError(f"choice {choice.label or name!r} of {ref!r} holds another Choice in its option "
                              f"{inner[0].split('.')[0]!r}; nested choices are not supported: flatten them into one "
                              "Choice of all combinations.", param="space")
    labels = [choice.label or name for name, choice in found]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"the choices of {ref!r} share the labels {repeated}; give each Choice its own label.",
                          param="space")
    return found


class ModelSpace(Space):
    """The search space of a user's model: one dimension per Choice, costs counted by torch.

    ``factory`` builds the model (called with the ``kwargs`` among in_channels,
    num_classes and image_size that it accepts); ``input_shape`` is one image's
    (C, H, W). ``name`` is how runs and architectures refer to the space (the
    reference it was loaded from).
    """

    def __init__(self, *, name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        self.name = name
        self.factory = factory
        defaults = factory_defaults(factory)
        self.kwargs = {**defaults, **(kwargs or {})}
        if input_shape is None:
            size = self.kwargs.get("image_size")
            if size is None or "in_channels" not in self.kwargs:
                raise ConfigError(f"The 'space' parameter names {name!r}, whose input shape is unknown: give the data "
                                  "(--data) or defaults for in_channels and image_size in the factory's signature.",
                                  param="space")
            hw = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
            input_shape = (int(self.kwargs["in_channels"]), *map(int, hw))
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = self.kwargs.get("num_classes")
        self._probe()
        self.summary = f"your model, {len(self.dims)} choices"

    # --- building the description ----------------------------------------------------------
    def new_model(self) -> nn.Module:
        """A freshly initialised model from the factory (the supernet's module)."""
        return call_factory(self.factory, self.kwargs, self.name)

    def _probe(self) -> None:
        model = self.new_model().eval()
        found = find_choices(model, self.name)
        self.choice_paths = tuple(name for name, _ in found)
        inputs: dict[int, list[tuple]] = {i: [] for i in range(len(found))}
        hooks = [choice.register_forward_pre_hook(lambda _m, args, i=i: inputs[i].append(_detached(args)))
                 for i, (_, choice) in enumerate(found)]
        x = torch.zeros(1, *self.input_shape)
        try:
            total, out = _count(lambda: model(x))
        except Exception as exc:  # the user's model on the data's shape
            raise ConfigError(f"the model of {self.name!r} fails on one image of shape {self.input_shape} (the data's): "
                              f"{type(exc).__name__}: {exc}. Check in_channels and image_size against the data.",
                              param="space") from None
        finally:
            for h in hooks:
                h.remove()
        self._check_output(out)
        for i, (name, choice) in enumerate(found):
            if len(inputs[i]) != 1:
                how = "never runs" if not inputs[i] else f"runs {len(inputs[i])} times"
                raise ConfigError(f"choice {choice.label or name!r} of {self.name!r} {how} in one forward pass; every "
                                  "Choice must run exactly once (give each place its own Choice).", param="space")
        in_choice = {id(p) for _, c in found for p in c.parameters()}
        fixed_params = _params(model, in_choice)
        dims, per_dim, described = [], [], []
        for i, (name, choice) in enumerate(found):
            label = choice.label or name
            args = inputs[i][0]
            table, rows, shapes = {}, [], []
            for code, (opt_name, option) in enumerate(choice.options.items()):
                try:
                    flops, out_i = _count(lambda: option(*args))
                except Exception as exc:
                    raise ConfigError(f"option {opt_name!r} of choice {label!r} fails on the choice's input "
                                      f"{_shape(args)}: {type(exc).__name__}: {exc}", param="space") from None
                shapes.append(_shape(out_i))
                table[code] = Cost(int(flops), _params(option))
                rows.append({"name": opt_name, "type": type(option).__name__, "flops": int(flops),
                             "params": table[code].params})
            if len(set(shapes)) > 1:
                listed = ", ".join(f"{n} -> {s}" for n, s in zip(choice.names, shapes))
                raise ConfigError(f"the options of choice {label!r} give outputs of different shapes on its input "
                                  f"{_shape(args)}: {listed}. Every option must give the same shape (options that change "
                                  "the shapes after them, such as a stage's width, are not supported).", param="space")
            dims.append(Dim(label=label, options=tuple(range(len(choice.options))), names=choice.names))
            per_dim.append(table)
            described.append({"label": label, "path": name, "input_shape": _shape(args), "output_shape": shapes[0],
                              "options": rows})
        active = sum(per_dim[i][0].flops for i in range(len(found)))
        fixed = Cost(int(total) - active, fixed_params)
        self.dims = tuple(dims)
        self.__dict__["_cost_cache"] = (fixed, per_dim)
        inside = {id(m) for _, c in found for m in c.modules()}
        layout = [f"{n}: {type(m).__name__}" for n, m in model.named_modules() if n and id(m) not in inside]
        self.description = {"input_shape": list(self.input_shape), "num_classes": self.num_classes,
                            "fixed": {"flops": fixed.flops, "params": fixed.params, "modules": layout},
                            "choices": described}
        self._check_additive(model, found)

    def _check_output(self, out: Any) -> None:
        if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != 1:
            raise ConfigError(f"the model of {self.name!r} must return logits of shape (batch, classes); it returned "
                              f"{_shape(out)} for one image.", param="space")
        if self.num_classes is not None and out.shape[1] != self.num_classes:
            raise ConfigError(f"the model of {self.name!r} gives {out.shape[1]} classes, the data has "
                              f"{self.num_classes}; build the head with the factory's num_classes argument.",
                              param="space")

    def _check_additive(self, model: nn.Module, found: list[tuple[str, Choice]]) -> None:
        """The last option of every choice: the counted network must equal the fixed part plus its options."""
        last = Arch(self.name, tuple(d.options[-1] for d in self.dims))
        for (_, choice), code in zip(found, last.choices):
            choice.active = choice.names[code]
        counted, _ = _count(lambda: model(torch.zeros(1, *self.input_shape)))
        expected = self.cost(last).flops
        if counted != expected:
            raise ConfigError(f"the cost of {self.name!r} is not the sum of its parts: {self.format(last)} counts "
                              f"{counted:,} multiply-accumulates, the fixed part plus its options {expected:,}. The code "
                              "outside the choices must not depend on which option runs.", param="space")

    @property
    def digest(self) -> str:
        """A short hash of the description (choices, options, shapes, costs): equal spaces, equal digests."""
        text = json.dumps(self.description, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def difference(self, stored: dict) -> str | None:
        """What differs between this space and a stored description (None when they agree), in a few words."""
        mine_all = json.loads(json.dumps(self.description, default=str))
        if "modules" not in stored.get("fixed", {}):  # a description written before the fixed part listed its modules
            mine_all["fixed"].pop("modules", None)
        if stored == mine_all:
            return None
        mine, theirs = self.description["choices"], stored.get("choices", [])
        for i in range(max(len(mine), len(theirs))):
            a = mine[i] if i < len(mine) else None
            b = theirs[i] if i < len(theirs) else None
            if json.loads(json.dumps(a, default=str)) != b:
                label = (b or a)["label"]
                if a is None:
                    return f"choice {label!r} is gone"
                if b is None:
                    return f"choice {label!r} is new"
                names_a = [o["name"] for o in a["options"]]
                names_b = [o["name"] for o in b["options"]]
                if names_a != names_b:
                    return f"choice {label!r} has options {names_a} (the run was trained with {names_b})"
                return f"choice {label!r} differs in its shapes or costs"
        return "the fixed part of the model (outside the choices) differs in its modules, shapes or costs"

    # --- encoding ---------------------------------------------------------------------------------
    def format(self, arch: Arch) -> str:
        return ",".join(f"{d.label}={d.names[d.options.index(c)]}" for d, c in zip(self.dims, arch.choices))

    def parse(self, text: str) -> Arch:
        text = str(text).strip()
        example = self.format(Arch(self.name, tuple(d.options[-1] for d in self.dims)))
        if "=" not in text and text.isdigit() and len(text) == len(self.dims):
            return self.make([int(c) for c in text])
        given: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            label, sep, option = part.partition("=")
            if not sep:
                raise ArchStringError(f"{text!r} is not an architecture of {self.name!r}: write label=option for every "
                                      f"choice, e.g. {example!r}")
            given[label.strip()] = option.strip()
        labels = [d.label for d in self.dims]
        unknown = [k for k in given if k not in labels]
        missing = [k for k in labels if k not in given]
        if unknown or missing:
            what = f"unknown choices {unknown}" if unknown else f"no option for {missing}"
            raise ArchStringError(f"{text!r} is not an architecture of {self.name!r} ({what}); its choices are "
                                  f"{labels}, e.g. {example!r}")
        choices = []
        for dim in self.dims:
            name = given[dim.label]
            if name not in dim.names:
                raise ArchStringError(f"choice {dim.label!r} of {text!r} has no option {name!r}; allowed: "
                                      f"{', '.join(dim.names)}")
            choices.append(dim.options[dim.names.index(name)])
        return Arch(self.name, tuple(choices))
