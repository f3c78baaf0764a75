"""One registry shape for everything the package looks up by name.

Losses, models, datasets, attacks and adversarial training methods each keep a
:class:`Registry`: a name -> object table with one way to add an entry
(:meth:`Registry.register`, also a decorator), one way to look one up
(:meth:`Registry.get`) and one error for a name that is not there
(:class:`~drsl_utils.errors.UnknownNameError`, a ``ValueError``, whose message lists the
registered names). A user's own loss, architecture or dataset goes in the same table as
the built-in ones and is used by name like them::

    @models.MODELS.register("mynet")
    def mynet(info, width=64):
        ...

The entries given when a registry is made are its built-in ones
(:meth:`Registry.is_builtin`): their code is part of the package and enters cache keys
through ``cache.code_fingerprint``; anything registered later is keyed by its own code
and data (``cache.user_fingerprint``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from .errors import DuplicateNameError, UnknownNameError

__all__ = ["Registry", "check_params"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table of one ``kind`` (``"loss"``, ``"model"``, ...).

    Iterating gives the names in the order they were registered, and ``len``, ``in``
    and ``registry[name]`` work as on a dict, so code that read the old tuples and dicts
    of names (``MODELS``, ``LOSSES``) keeps working.

    Args:
        kind: what the entries are, for messages (``"attack"`` gives "attack name='x'
            is not valid; choose one of: ...").
        builtin: the package's own entries, in the order they are offered.
    """

    def __init__(self, kind: str, builtin: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = dict(builtin or {})
        self._builtin: dict[str, T] = dict(self._items)

    @overload
    def register(self, name: str, obj: None = None, *, replace: bool = False
                 ) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, replace: bool = False
                 ) -> T | Callable[[T], T]:
        """Add ``obj`` under ``name`` and return it; without ``obj``, a decorator that
        does so (``@REG.register("name")``).

        Registering the same object again, or an equal one (a notebook cell run twice
        re-declares an equal dataclass), is a no-op. Another object under a taken name
        raises :class:`~drsl_utils.errors.DuplicateNameError` unless ``replace=True``:
        a silent overwrite would leave earlier results under that name meaning
        something else.
        """
        if obj is None:
            return lambda o: self.register(name, o, replace=replace)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name={name!r} is not valid: a {self.kind} is registered "
                             "under a non-empty string")
        old = self._items.get(name, _MISSING)
        if old is not _MISSING and not _same(old, obj) and not replace:
            raise DuplicateNameError(f"{self.kind} name={name!r} is already registered "
                                     f"(as {_describe(old)}); pass replace=True to "
                                     "replace it")
        if old is _MISSING or not _same(old, obj):
            self._items[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held; a built-in entry that was replaced
        comes back. Raises :class:`~drsl_utils.errors.UnknownNameError` for a name that
        is not registered."""
        obj = self.get(name)
        if name in self._builtin and obj is not self._builtin[name]:
            self._items[name] = self._builtin[name]
        else:
            del self._items[name]
        return obj

    def get(self, name: str, param: str = "name") -> T:
        """The object registered as ``name``.

        Args:
            name: the registered name.
            param: the caller's parameter that held ``name``, for the message.

        Raises:
            UnknownNameError: ``name`` is not registered; the message names the value
                and lists the registered names.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            choices = ", ".join(repr(n) for n in self._items)
            raise UnknownNameError(f"{self.kind} {param}={name!r} is not valid; choose "
                                   f"one of: {choices}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order they were registered."""
        return tuple(self._items)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` holds the package's own entry (not one a user registered or
        put in its place)."""
        return name in self._builtin and self._items.get(name) is self._builtin[name]

    def build(self, name: str, *args: Any, param: str = "name", **params: Any) -> Any:
        """Call the entry registered as ``name`` (a class or a factory) with ``args``
        and keyword ``params``, after :func:`check_params`."""
        obj = self.get(name, param)
        check_params(f"{self.kind} {name!r}", obj, params, skip=len(args))
        return obj(*args, **params)  # type: ignore[operator]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._items
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> tuple[str, ...]:
        return self.names()

    def values(self) -> list[T]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"


def check_params(what: str, fn: Callable[..., Any], params: Mapping[str, Any], *,
                 skip: int = 0) -> None:
    """Raise :class:`~drsl_utils.errors.UnknownNameError` when ``params`` holds a keyword
    that ``fn`` (a class or a function) does not take, listing the ones it does.

    ``skip`` leading positional parameters are the caller's (a model factory's
    ``info``) and are not offered. A ``fn`` with ``**kwargs`` of its own, or one whose
    signature Python cannot read, takes anything.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    # A loss without an __init__ of its own shows torch's ``Module.__init__(*args,
    # **kwargs)``, which takes nothing: only the caller's own ``**kwargs`` take anything.
    own = getattr(fn, "__init__", None) if isinstance(fn, type) else fn
    if (any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
            and not str(getattr(own, "__module__", "")).startswith("torch")):
        return
    allowed = [n for n, p in list(sig.parameters.items())[skip:] if p.kind in kinds]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UnknownNameError(f"{what} has no parameter {', '.join(map(repr, unknown))}; "
                               f"its parameters are: {', '.join(allowed) or '(none)'}")


_MISSING = object()


def _same(old: Any, new: Any) -> bool:
    """The same object, or an equal one of the same type (functions and classes are
    equal only to themselves)."""
    if old is new:
        return True
    try:
        return type(old) is type(new) and bool(old == new)
    except Exception:  # noqa: BLE001 - an == that cannot say (arrays) means "not equal"
        return False


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None)
    return f"{module}.{name}" if module else name
