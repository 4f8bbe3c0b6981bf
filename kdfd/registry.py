"""The method registry: `METHODS` (name -> class), `register` (a method's class decorator), `get_method`, and where
methods come from: `load_methods()` fills the registry from three sources.

1. kdfd's own method (`kdfd.kdfd`).
2. Every module of the `baselines` package, found by listing the package: a new file there needs no other edit.
3. Every entry point of the group `kdfd_bench.methods` in the installed distributions, so a lab can keep its methods
   in a package of its own. An entry point names a module (importing it runs its `@register`s) or a `Distiller`
   subclass (registered here), as in the lab package's pyproject.toml:

       [project.entry-points."kdfd_bench.methods"]
       my-kd = "mylab.my_kd"            # or "mylab.my_kd:MyKD"

Importing a method's module registers it (`@register`); nothing else imports them as a side effect: the command
line calls `load_methods()` before it reads the registry, and `get_method` calls it on a name it does not know yet (a
SLURM task, a library caller). A method that fails to import, or a name two methods claim, stops the
load with one line naming the entry point and its package.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import sys
import types
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from .errors import ConfigError, one_of

if TYPE_CHECKING:  # the interface imports this module (its `register`, which the method modules import from there)
    from .distiller import Distiller

GROUP = "kdfd_bench.methods"
OWN = ("kdfd.kdfd",)
BASELINES = "baselines"

_loaded = False
_loading = False

METHODS: dict[str, type[Distiller]] = {}


def register(cls: type[Distiller]) -> type[Distiller]:
    if not dataclasses.is_dataclass(cls.Params):
        raise TypeError(f"{cls.__name__}.Params must be a dataclass")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        first = METHODS[cls.name]
        raise ValueError(f"method name {cls.name!r} registered twice: by {first.__module__}.{first.__qualname__} and "
                         f"by {cls.__module__}.{cls.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Distiller]:
    """The method registered as `name`; the registry is loaded (`load_methods`) on a name not seen yet."""
    if name not in METHODS:
        load_methods()
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(one_of("method", name, METHODS)) from None


def method_facts() -> dict[str, dict]:
    """What a report says of each registered method without importing it again: name -> {"version", "scale" (how
    its losses are normalised), "defaults" (its parameters' default values, so a report can name what a suite set
    otherwise)}. JSON-ready: a suite's expansion keeps its methods' facts for a report without torch."""
    return {n: {"version": str(c.version), "scale": c.scale,
                "defaults": json.loads(json.dumps(dataclasses.asdict(c.Params())))}  # tuples as a record's lists
            for n, c in sorted(METHODS.items())}


def load_methods() -> dict[str, type[Distiller]]:
    """Import every method once per process (later calls return at once) and return the registry, name -> class."""
    global _loaded, _loading
    if _loaded or _loading:  # _loading: a module that asks for a method while it loads gets what is there so far
        return METHODS
    _loading = True
    try:
        for name in OWN:
            importlib.import_module(name)
        package = importlib.import_module(BASELINES)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{BASELINES}.{module.name}")
        for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
            _load_entry_point(ep)
        _loaded = True  # only after a complete load: a failed one is tried again, and fails again, loudly
    finally:
        _loading = False
    return METHODS


def _load_entry_point(ep: EntryPoint) -> None:
    where = f"entry point {ep.name!r} = {ep.value!r} (group {GROUP}, package {_package(ep)})"
    try:
        obj = ep.load()
    except Exception as e:  # its own bug or a missing dependency: the user's to fix, named in one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(f"{where} does not load: {type(e).__name__}: {first}") from None
    if _is_method_class(obj):
        try:
            register(obj)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
    elif not isinstance(obj, types.ModuleType):
        raise ConfigError(f"{where} is a {type(obj).__name__}; expected a module or a Distiller subclass")


def _is_method_class(obj) -> bool:
    """Whether `obj` is a `Distiller` subclass. The interface is looked up, not imported: a subclass exists only once
    its module has run."""
    interface = sys.modules.get(f"{__package__}.distiller")
    return interface is not None and isinstance(obj, type) and issubclass(obj, interface.Distiller)


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"
