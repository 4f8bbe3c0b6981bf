"""Where methods come from: `load_methods()` fills the registry (`kdfd.distiller.METHODS`) from three sources.

1. kdfd's own method (`kdfd.kdfd`).
2. Every module of the `baselines` package, found by listing the package: a new file there needs no other edit.
3. Every entry point of the group `kdfd_bench.methods` in the installed distributions, so a lab can keep its methods
   in a package of its own. An entry point names a module (importing it runs its `@register`s) or a `Distiller`
   subclass (registered here), as in the lab package's pyproject.toml:

       [project.entry-points."kdfd_bench.methods"]
       my-kd = "mylab.my_kd"            # or "mylab.my_kd:MyKD"

Importing a method's module registers it (`@register`); nothing else imports them as a side effect: the command
line calls `load_methods()` before it reads the registry, and `kdfd.distiller.get_method` calls it on a name it does
not know yet (a SLURM task, a library caller). A method that fails to import, or a name two methods claim, stops the
load with one line naming the entry point and its package.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
from importlib.metadata import EntryPoint, entry_points

from .distiller import METHODS, Distiller, register
from .errors import ConfigError

GROUP = "kdfd_bench.methods"
OWN = ("kdfd.kdfd",)
BASELINES = "baselines"

_loaded = False
_loading = False


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
    if isinstance(obj, type) and issubclass(obj, Distiller):
        try:
            register(obj)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {e}") from None
    elif not isinstance(obj, types.ModuleType):
        raise ConfigError(f"{where} is a {type(obj).__name__}; expected a module or a Distiller subclass")


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"
