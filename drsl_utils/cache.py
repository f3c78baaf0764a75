"""The on-disk cache: content-addressed keys that carry the code, guarded reads, atomic
and durable writes, one process per key, and the tools to inspect it.

Layout::

    <root>/<kind>/<code>/<entry>        kind: models | attacks | embeddings

``<root>`` is ``$DRSL_CACHE_DIR`` or ``data/cache``. A key says what made an entry, from
two sources:

- *Code*: ``<code>`` is the fingerprint of the source that produces entries of that kind
  (:func:`code_fingerprint`): a hash of the syntax trees, docstrings removed, of the
  modules that write the kind and of everything they import within the package
  (:func:`kind_modules`, derived from the import graph, never listed by hand). Editing a
  comment or a docstring keeps the cache; changing a line of code that the kind imports
  starts a fresh one; editing code it does not import (plots, claims, the report) keeps
  it. Each model's key adds its own loss's :func:`loss_fingerprint`.
- *Data*: within a folder, an entry's name hashes its whole configuration
  (:func:`stable_hash`, which spells every number one way: ``tau=1`` and ``tau=1.0``
  are one key), arrays by their bytes (:func:`tensor_fingerprint`). Something made
  outside this package's code, such as a model trained elsewhere, is keyed by its
  contents this way, outside the import graph: :func:`foreign_model_key` hashes its
  weights (:func:`weights_fingerprint`), its classes and their source, so an untrained
  and a trained copy of one architecture never share an entry, whatever their names.
  What a user registers (a model factory, a loss, a dataset of tensors) is keyed the
  same way, by :func:`user_fingerprint`: code by its source (or bytecode), data by its
  bytes, so two different factories or datasets under one name never share an entry.

Reads never crash a run: :func:`load_entry` turns a truncated, empty or unreadable
entry into a warning that names the file, moves it to ``<root>/quarantine/`` and reports
a miss, so the caller recomputes it. Writes go through :func:`atomic_write` (a temporary
file, fsynced, renamed over the target, and the folder fsynced), so a reader never sees
half a file. :func:`compute_once` holds a per-key file lock while it computes, so two
processes that need the same entry (two notebooks side by side, or a JupyterLab kernel
next to the main job) compute it once; the waiting side loads the result.

Command line (``python -m drsl_utils.cache``): ``info`` (size and count per kind and
code version), ``verify`` (every entry loads; broken ones are quarantined) and ``prune``
(remove entries of code versions that are no longer current, or older than N days).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import UnknownNameError

__all__ = [
    "KINDS",
    "CacheWarning",
    "stable_hash",
    "tensor_fingerprint",
    "weights_fingerprint",
    "foreign_model_key",
    "source_digest",
    "callable_fingerprint",
    "user_fingerprint",
    "code_fingerprint",
    "loss_fingerprint",
    "kind_modules",
    "default_cache_dir",
    "entry_dir",
    "atomic_write",
    "load_entry",
    "compute_once",
    "save_npz",
    "load_npz",
]

T = TypeVar("T")

DEFAULT_CACHE_DIR = Path("data") / "cache"
_PACKAGE = Path(__file__).resolve().parent

class CacheWarning(UserWarning):
    """A cache entry could not be read and will be recomputed."""


# ------------------------------------------------------------------------------ keys


def default_cache_dir() -> Path:
    """The cache root: ``$DRSL_CACHE_DIR`` if set, else ``data/cache`` under the repo root."""
    env = os.environ.get("DRSL_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / DEFAULT_CACHE_DIR


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dc__": type(obj).__name__, **{k: _canonical(v) for k, v in
                                                 dataclasses.asdict(obj).items()}}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, bool | np.bool_) or obj is None:
        return bool(obj) if obj is not None else None
    if isinstance(obj, int | float | np.integer | np.floating):
        # One spelling per number: tau=1 and tau=1.0 are the same configuration.
        return repr(float(obj))
    if isinstance(obj, np.ndarray | torch.Tensor):
        return tensor_fingerprint(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A hex digest of ``parts`` that is stable across processes and machines."""
    payload = json.dumps([_canonical(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def tensor_fingerprint(x: np.ndarray | torch.Tensor) -> str:
    """Hash of an array's dtype, shape and bytes (for keys that depend on data)."""
    arr = x.detach().cpu().contiguous().numpy() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:16]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Hash of a module's ``state_dict`` (parameters and buffers): every tensor's name,
    dtype, shape and bytes, in name order, so the same weights give the same hash on
    any device and in any process. Read as raw bytes, so bfloat16 weights hash too."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        # extra state a module put in its state_dict goes in by its repr
        h.update((_tensor_digest(value) if isinstance(value, torch.Tensor)
                  else repr(value)).encode())
    return h.hexdigest()[:16]


def _tensor_digest(value: torch.Tensor) -> str:
    """A tensor's dtype, shape and bytes (read raw, so bfloat16 hashes too)."""
    t = value.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, not a copy
    return h.hexdigest()


def source_digest(obj: Any) -> str:
    """A digest of the syntax tree (docstrings removed) of a class or function defined
    outside torch, or "" where Python cannot find or parse its source (a class typed
    into an interactive session, a lambda in the middle of a call)."""
    import inspect
    import textwrap

    if str(getattr(obj, "__module__", "")).split(".")[0] == "torch":
        return ""
    try:
        text = textwrap.dedent(inspect.getsource(obj))
        return _digest(_dump([_strip_docstrings(ast.parse(text))]))
    except (OSError, TypeError, SyntaxError):
        return ""


def _code_digest(code: Any) -> list[Any]:
    """A code object's bytecode, names and constants, nested code objects included
    (their ``repr`` carries a memory address, so they are read, not printed)."""
    return [code.co_code.hex(), list(code.co_names), [
        _code_digest(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]]


def _held(value: Any) -> Any:
    """What a callable closes over or is bound to, for its key: a module by its tree and
    weights, a tensor by its bytes, anything else by its ``repr`` (one that carries a
    memory address only costs a cache miss, never a confusion)."""
    if isinstance(value, torch.nn.Module):
        return [repr(value), weights_fingerprint(value)]
    if isinstance(value, torch.Tensor):
        return _tensor_digest(value)
    return repr(value)


def callable_fingerprint(fn: Any) -> str:
    """The identity of a callable (a feature extractor) for a cache key: its qualified
    name, its code (bytecode, names, constants) and what it holds: the object a method
    is bound to and the values a closure captures, modules by their weights. Two lambdas
    that differ only in their body, or in the model they call, differ here."""
    func = getattr(fn, "__func__", fn)  # a bound method's function
    held = [getattr(fn, "__self__", None)] if func is not fn else []
    if getattr(func, "__code__", None) is None:  # a callable object: its __call__
        func, held = type(fn).__call__, [fn]
    code = getattr(func, "__code__", None)
    for cell in getattr(func, "__closure__", None) or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # an empty cell: a name not bound yet
            held.append(None)
    # Modules and tensors it reads as globals (a notebook's ``encoder``), by content.
    names = _code_names(code) if code is not None else set()
    scope = getattr(func, "__globals__", {})
    held += [scope[n] for n in sorted(names) if isinstance(scope.get(n), torch.nn.Module
                                                            | torch.Tensor)]
    return stable_hash("callable", f"{getattr(func, '__module__', '')}."
                                   f"{getattr(func, '__qualname__', '')}",
                       _code_digest(code) if code is not None else "",
                       [_held(v) for v in held])


def _code_names(code: Any) -> set[str]:
    """The global names a code object and the code nested in it read."""
    return set(code.co_names).union(*(_code_names(c) for c in code.co_consts
                                      if hasattr(c, "co_code")))


def foreign_model_key(model: torch.nn.Module, *extra: Any) -> str:
    """The cache key of a model this package did not train: ``"foreign-"`` and a hash of
    its class's qualified name, its module tree (``repr``, which names every layer and
    its settings), the code of each class in the tree that is not torch's own (its
    source's tree; where Python cannot read the source, as for a class defined in a
    notebook cell, its methods' bytecode), its weights (:func:`weights_fingerprint`) and
    ``extra`` (what else changes its cached arrays, such as its feature source).

    A display name never enters it: an untrained and a trained copy evaluated under the
    same name get two keys, and so does a ``forward`` edited without touching a weight
    (in a file or in a notebook cell). Toolkit-trained models keep their configuration's
    key (``training.TrainConfig.key``)."""
    cls = type(model)
    classes = sorted({f"{type(m).__module__}.{type(m).__qualname__}": type(m)
                      for m in model.modules()}.items())
    return "foreign-" + stable_hash("foreign-model", f"{cls.__module__}.{cls.__qualname__}",
                                    repr(model), [(n, _class_code(c)) for n, c in classes],
                                    weights_fingerprint(model), list(extra))


def user_fingerprint(obj: Any) -> str:
    """The identity, for a cache key, of something a user registered with the package:
    a model factory and the module it builds, a loss class, a dataset's tensors. Their
    code is not the package's, so :func:`code_fingerprint` cannot see it; every registry
    keys what a user adds here, one way:

    - a tensor or array: its dtype, shape and bytes;
    - an ``nn.Module``: :func:`foreign_model_key` (its layout, its classes' code, its
      weights);
    - a function or class: the syntax tree of its source, docstrings removed
      (:func:`source_digest`); where Python cannot read the source (typed into a
      notebook or a shell), a function's bytecode, constants and what it closes over
      (:func:`callable_fingerprint`), a class's methods' bytecode; a
      ``functools.partial``: its function, arguments and keywords; torch's own: the
      qualified name and torch's version;
    - a list, tuple or dict: its items, each this way; anything else: its value
      (:func:`stable_hash`).

    Where none of that is readable (a callable object of a compiled extension), the
    qualified name alone is used, with a :class:`CacheWarning` saying that an edit to it
    will not start a fresh entry.
    """
    if isinstance(obj, torch.Tensor):
        return _tensor_digest(obj)[:16]
    if isinstance(obj, np.ndarray):
        return tensor_fingerprint(obj)
    if isinstance(obj, torch.nn.Module):
        return foreign_model_key(obj)
    if isinstance(obj, list | tuple):
        return stable_hash("user-list", [user_fingerprint(v) for v in obj])
    if isinstance(obj, dict):
        return stable_hash("user-dict", {str(k): user_fingerprint(v) for k, v in obj.items()})
    if isinstance(obj, functools.partial):
        return stable_hash("user-partial", user_fingerprint(obj.func),
                           user_fingerprint(list(obj.args)), user_fingerprint(obj.keywords))
    if callable(obj):
        return _code_identity(obj)
    return stable_hash("user-value", obj)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


_CODE_IDENTITIES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _code_identity(obj: Any) -> str:
    """A function's or class's code: its source where Python can read it, else its
    bytecode; see :func:`user_fingerprint`. Remembered per object (reading a class's
    source parses its whole file): redefining a function or class makes a new object."""
    try:
        return _CODE_IDENTITIES[obj]
    except (KeyError, TypeError):  # TypeError: an object without weak references
        pass
    identity = _read_code_identity(obj)
    with contextlib.suppress(TypeError):
        _CODE_IDENTITIES[obj] = identity
    return identity


def _read_code_identity(obj: Any) -> str:
    name = _qualname(obj)
    if str(getattr(obj, "__module__", "")).split(".")[0] == "torch":
        return stable_hash("torch", name, torch.__version__)
    digest = source_digest(obj)
    if digest:
        return stable_hash("source", name, digest)
    if isinstance(obj, type):
        methods = _methods_digest(obj)
        if methods:
            return stable_hash("class-code", name, methods)
    elif (getattr(getattr(obj, "__func__", obj), "__code__", None)
          or getattr(type(obj).__call__, "__code__", None)) is not None:
        return callable_fingerprint(obj)
    warnings.warn(f"cache: neither the source nor the code of {name} can be read, so the "
                  "cache keys of what is made with it use its name alone, and editing it "
                  "will not start a fresh cache entry; pass force=True (training.train) "
                  "after an edit, or define it in a file", CacheWarning, stacklevel=3)
    return stable_hash("name-only", name)


def _methods_digest(cls: type) -> str:
    """A class's own methods' bytecode and its bases' names, for a class whose source
    Python cannot read (defined in a notebook cell or a shell); "" for one without
    methods of its own."""
    methods = [(k, _code_digest(getattr(v, "__func__", v).__code__))
               for k, v in sorted(vars(cls).items())
               if hasattr(getattr(v, "__func__", v), "__code__")]
    if not methods:
        return ""
    return _digest(json.dumps([[_qualname(b) for b in cls.__mro__[1:]], methods]))


def _class_code(cls: type) -> str:
    """A module class's code for :func:`foreign_model_key`: its source's tree, else
    (a notebook's class) its methods' bytecode; "" for torch's own classes."""
    return source_digest(cls) or ("" if cls.__module__.split(".")[0] == "torch"
                                  else _methods_digest(cls))


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _dump(nodes: Sequence[ast.AST]) -> str:
    return "\n".join(ast.dump(n, include_attributes=False) for n in nodes)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _top_level(tree: ast.Module) -> tuple[dict[str, ast.stmt], list[ast.stmt]]:
    """Top-level definitions by name, and the statements that define no name."""
    named: dict[str, ast.stmt] = {}
    rest: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            named[node.name] = node
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for t in node.targets:
                named[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            named[node.target.id] = node
        else:
            rest.append(node)
    return named, rest


def _closure(uses: dict[str, set[str]], roots: Sequence[str]) -> list[str]:
    """``roots`` and every top-level name they use (``uses``: the names each top-level
    definition mentions), transitively, in a stable order."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in uses:
            continue
        seen.add(name)
        todo.extend(uses[name])
    return sorted(seen)


class _Module:
    """One module's source, parsed without docstrings: its top-level definitions, the
    names each of them uses, and its other statements (imports among them)."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text()
        self.tree = _strip_docstrings(ast.parse(self.text, filename=str(path)))
        self.named, self.rest = _top_level(self.tree)
        self.uses = {k: {n.id for n in ast.walk(v) if isinstance(n, ast.Name)}
                     for k, v in self.named.items()}

    @functools.cached_property
    def fingerprint(self) -> str:
        return _digest(_dump([self.tree]))


class _Source:
    """What one version of the package's source says about cache keys: which code
    writes each kind, what that code imports, and the fingerprints. Modules are parsed
    when first needed (a kind's closure does not reach the plotting and report code)."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.paths = {p.stem: p for p in sorted(package.glob("*.py"))}
        self._parsed: dict[str, _Module] = {}
        self.writers = self._writers()
        self.modules = {kind: self._modules(kind) for kind in sorted(self.writers)}
        self._fingerprints: dict[str, str] = {}

    def module(self, name: str) -> _Module:
        if name not in self._parsed:
            self._parsed[name] = _Module(self.paths[name])
        return self._parsed[name]

    def _writers(self) -> dict[str, dict[str, list[str]]]:
        """``{kind: {module: [top-level names that call entry_dir(kind)]}}``: a kind
        exists because some code writes entries of it."""
        kinds: dict[str, dict[str, list[str]]] = {}
        for name, path in self.paths.items():
            if name == "cache" or "entry_dir(" not in path.read_text():
                continue
            for top, node in self.module(name).named.items():
                for call in ast.walk(node):
                    if (isinstance(call, ast.Call) and call.args
                            and getattr(call.func, "id", getattr(call.func, "attr", None))
                            == "entry_dir" and isinstance(call.args[0], ast.Constant)
                            and isinstance(call.args[0].value, str)):
                        kinds.setdefault(call.args[0].value, {}).setdefault(name, []).append(
                            top)
        return kinds

    def _imports(self, nodes: Sequence[ast.AST]) -> set[str]:
        """The package's modules that ``nodes`` import (``from .x import``, ``from .
        import x``, ``import drsl_utils.x``), at any depth: an import inside a function
        counts."""
        found: set[str] = set()
        for node in nodes:
            for n in ast.walk(node):
                if isinstance(n, ast.ImportFrom) and (
                        n.level == 1 or (n.module or "").split(".")[0] == self.package.name):
                    path = (n.module or "").split(".")[n.level == 0:]
                    found |= {path[0]} if path and path[0] else {a.name for a in n.names}
                elif isinstance(n, ast.Import):
                    found |= {a.name.split(".")[1] for a in n.names
                              if a.name.startswith(self.package.name + ".")}
        return found & set(self.paths)

    def _modules(self, kind: str) -> tuple[str, ...]:
        todo: set[str] = set()
        for name, writes in self.writers[kind].items():
            mod = self.module(name)
            roots = [n for n in mod.named if set(writes) & set(_closure(mod.uses, [n]))]
            code = [mod.named[n] for n in _closure(mod.uses, roots)]
            todo |= {name} | self._imports(mod.rest + code)
        seen = set(self.writers[kind])
        while todo - seen:
            name = min(todo - seen)
            seen.add(name)
            todo |= self._imports([self.module(name).tree])
        return tuple(sorted(seen))

    @functools.cached_property
    def losses(self) -> tuple[str, dict[str, tuple[str, list[str]]]]:
        """Fingerprint of ``losses.py`` outside the registered losses' own code, and per
        registered name its class and the class's closure within the module. The
        registry is read from the source (``LOSSES = {"ce": CrossEntropy, ...}``), so a
        key never imports ``losses.py``."""
        mod = self.module("losses")
        # ``LOSSES = Registry("loss", {"ce": CrossEntropy, ...})``: the dict literal
        registry = next(n for n in ast.walk(mod.named["LOSSES"]) if isinstance(n, ast.Dict))
        closures = {k.value: (v.id, _closure(mod.uses, [v.id]))
                    for k, v in zip(registry.keys, registry.values)}
        owned = {n for _, names in closures.values() for n in names} | {"LOSSES"}
        shared = mod.rest + [mod.named[k] for k in sorted(set(mod.named) - owned)]
        return _digest(_dump(shared)), closures

    def fingerprint(self, kind: str) -> str:
        if kind not in self._fingerprints:
            h = hashlib.sha256()
            for name in self.modules[kind]:
                h.update(name.encode())
                h.update((self.losses[0] if name == "losses" else
                          self.module(name).fingerprint).encode())
            self._fingerprints[kind] = h.hexdigest()[:10]
        return self._fingerprints[kind]


@functools.cache
def _parse(package: Path) -> _Source:
    return _Source(package)


def _source(package: Path | None = None) -> _Source:
    """The package's source (default: this package), read once per process: a running
    kernel keeps the keys of the code it imported."""
    return _parse(Path(package) if package is not None else _PACKAGE)


def kind_modules(kind: str, package: Path | None = None) -> tuple[str, ...]:
    """The modules whose code enters the key of every entry of ``kind``: the modules that
    write it (they call ``entry_dir(kind)``) and everything they import within the
    package, transitively.

    In a module that writes the kind, only the code that reaches the write counts for
    its imports, so ``embed.py`` drawing with ``plots.py`` keeps ``plots.py`` out of the
    embeddings' key; a module reached through an import counts with all its imports,
    wherever they stand (``training.py`` imports ``adversarial.py`` inside ``train``).

    Raises:
        UnknownNameError: no code writes entries of ``kind`` (a ``ValueError``; the
            message lists the kinds).
    """
    source = _source(package)
    if kind not in source.modules:
        raise UnknownNameError(f"kind={kind!r} is not valid; choose one of: "
                               f"{', '.join(repr(k) for k in source.modules)}")
    return source.modules[kind]


class _Kinds(Mapping[str, tuple[str, ...]]):
    """:data:`KINDS`, derived from the source when first read."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        return _source().modules[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(_source().modules)

    def __len__(self) -> int:
        return len(_source().modules)


#: ``{kind: modules}``, derived (:func:`kind_modules`): which modules' code each kind of
#: entry depends on. Attack records also depend on the model (their folder is the
#: model's key) and on the installed torchattacks version (part of each unit's key).
KINDS: Mapping[str, tuple[str, ...]] = _Kinds()


def loss_fingerprint(name: str, package: Path | None = None) -> str:
    """A 10-character fingerprint of one registered loss's code: its class and every
    helper of ``losses.py`` it uses (transitively). Editing the DRSL penalty changes
    DRSL's fingerprint and leaves cross-entropy's alone; the rest of ``losses.py``
    (imports, ``get_loss``) is part of :func:`code_fingerprint` ``("models")``."""
    source = _source(package)
    closures = source.losses[1]
    if name not in closures:
        raise UnknownNameError(f"loss {name!r} is not registered; choose one of: "
                               f"{', '.join(sorted(closures))}")
    cls, names = closures[name]
    named = source.module("losses").named
    return _digest(cls + _dump([named[k] for k in names]))[:10]


def code_fingerprint(kind: str, package: Path | None = None) -> str:
    """A 10-character fingerprint of the code behind entries of ``kind``
    (:func:`kind_modules`): changes when that code changes, not when a comment does.
    For ``losses.py`` only the part outside the registered losses counts here; each
    model's key adds its own loss's :func:`loss_fingerprint`."""
    kind_modules(kind, package)  # validates the kind
    return _source(package).fingerprint(kind)


def entry_dir(kind: str, root: str | Path | None = None) -> Path:
    """``<root>/<kind>/<code fingerprint>``: where the current code's entries live."""
    base = Path(root) if root is not None else default_cache_dir()
    return base / kind / code_fingerprint(kind)


# ---------------------------------------------------------------------------- writes


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync the file, rename it onto ``path`` and fsync the
    folder.

    A reader never sees a half-written file, and a killed job (or a power cut) leaves at
    most a stray temporary file behind, never a corrupt entry under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes files private (0600)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = False) -> Path:
    """Write ``arrays`` to ``path`` as ``.npz`` atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz"
            (np.savez_compressed if compress else np.savez)(fh, **arrays)

    return atomic_write(path, write)


def load_npz(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from an ``.npz`` into memory; raises ``KeyError`` if one is missing."""
    with np.load(path) as data:
        return {k: np.array(data[k]) for k in keys}


# ----------------------------------------------------------------------------- reads


def _root_of(path: Path) -> Path:
    """The cache root above an entry (``<root>/<kind>/<code>/...``), else its folder."""
    for parent in path.parents:
        if parent.name in KINDS:
            return parent.parent
    return path.parent


def quarantine(path: str | Path, reason: str) -> Path | None:
    """Move a broken entry out of the way (to ``<root>/quarantine/``) with a warning
    that names it; returns where it went (None if it had already gone)."""
    path = Path(path)
    root = _root_of(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    dest = root / "quarantine" / (str(rel).replace(os.sep, "__") + f".{int(time.time())}")
    warnings.warn(f"cache entry {path} is unreadable ({reason}); moved to {dest} and "
                  "recomputing it", CacheWarning, stacklevel=3)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
    except FileNotFoundError:
        return None
    except OSError:
        path.unlink(missing_ok=True)
    return dest


def load_entry(path: str | Path, load: Callable[[Path], T]) -> T | None:
    """``load(path)``, or None when the entry is missing or broken. A broken entry
    (truncated, empty, not the format ``load`` expects, missing a field) is quarantined
    with a :class:`CacheWarning`; it never raises."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        if path.stat().st_size == 0:
            raise EOFError("empty file")
        return load(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read means "recompute"
        quarantine(path, f"{type(exc).__name__}: {exc}")
        return None


def _lock_path(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return _root_of(path) / "locks" / f"{digest}.lock"


def compute_once(path: str | Path, load: Callable[[Path], T], compute: Callable[[], T],
                 save: Callable[[Path, T], Any] | None) -> tuple[T, bool]:
    """The entry at ``path``: loaded if it is there and readable, else computed once.

    While computing, a lock file per key (``<root>/locks/``) is held, so a second
    process that asks for the same entry waits and then loads it instead of computing
    it again. The lock dies with its process, so a killed run never blocks the next.

    Args:
        path: the entry's file.
        load: reads the entry (any exception counts as a broken entry).
        compute: makes the value.
        save: ``save(path, value)`` writes it (atomically); None: nothing is written.

    Returns:
        ``(value, from_cache)``.
    """
    from filelock import FileLock

    path = Path(path)
    hit = load_entry(path, load)
    if hit is not None:
        return hit, True
    lock = _lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        hit = load_entry(path, load)
        if hit is not None:
            return hit, True
        value = compute()
        if save is not None:
            save(path, value)
    return value, False


# ------------------------------------------------------------------------------ tools


def _loader_for(path: Path) -> Callable[[Path], Any]:
    if path.suffix == ".pt":
        return lambda p: torch.load(p, map_location="cpu", weights_only=True)
    if path.suffix == ".npz":
        return lambda p: load_npz(p, list(np.load(p).files))
    if path.suffix == ".npy":
        return np.load
    if path.suffix == ".joblib":
        import joblib

        return joblib.load
    return lambda p: p.read_bytes()


def _entries(root: Path) -> list[tuple[str, str, Path]]:
    out = []
    for kind in KINDS:
        base = root / kind
        if not base.is_dir():
            continue
        for code_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in sorted(code_dir.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    out.append((kind, code_dir.name, f))
    return out


def info(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Size and count of the entries per kind and code version (``current`` marks the
    version this code writes)."""
    root = Path(root) if root is not None else default_cache_dir()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, code, f in _entries(root):
        row = rows.setdefault((kind, code), {"kind": kind, "code": code, "entries": 0,
                                             "bytes": 0,
                                             "current": code == code_fingerprint(kind)})
        row["entries"] += 1
        row["bytes"] += f.stat().st_size
    return list(rows.values())


def verify(root: str | Path | None = None) -> tuple[int, list[Path]]:
    """Load every entry; broken ones are quarantined. Returns ``(n_ok, broken)``."""
    root = Path(root) if root is not None else default_cache_dir()
    ok, broken = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        for _, _, f in _entries(root):
            if load_entry(f, _loader_for(f)) is None:
                broken.append(f)
            else:
                ok += 1
    return ok, broken


def prune(root: str | Path | None = None, *, stale: bool = True,
          older_than_days: float | None = None, dry_run: bool = False) -> list[Path]:
    """Remove the entries of code versions that are no longer current (``stale``)
    and/or entries not modified for ``older_than_days``; also empties the quarantine.
    Returns what was (or, with ``dry_run``, would be) removed."""
    root = Path(root) if root is not None else default_cache_dir()
    removed: list[Path] = []
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    for kind in KINDS:
        base = root / kind
        if not base.is_dir():
            continue
        for code_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if stale and code_dir.name != code_fingerprint(kind):
                removed.append(code_dir)
                if not dry_run:
                    shutil.rmtree(code_dir, ignore_errors=True)
                continue
            if cutoff is not None:
                for f in sorted(code_dir.rglob("*")):
                    if f.is_file() and f.stat().st_mtime < cutoff:
                        removed.append(f)
                        if not dry_run:
                            f.unlink(missing_ok=True)
    q = root / "quarantine"
    if q.is_dir():
        removed.append(q)
        if not dry_run:
            shutil.rmtree(q, ignore_errors=True)
    return removed


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drsl_utils.cache",
                                     description="Inspect, check and prune the cache.")
    parser.add_argument("--root", type=Path, default=None,
                        help="cache root (default: $DRSL_CACHE_DIR or data/cache)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="size and count per kind and code version")
    sub.add_parser("verify", help="load every entry; quarantine the broken ones")
    p = sub.add_parser("prune", help="remove entries of old code versions (and old ones)")
    p.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                   help="also remove entries not modified for DAYS days")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep entries of code versions that are no longer current")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else default_cache_dir()
    if args.command == "info":
        rows = info(root)
        if not rows:
            print(f"{root}: empty")
            return 0
        print(f"{root}")
        print(f"{'kind':<12}{'code':<12}{'entries':>9}{'size':>11}  ")
        for r in rows:
            print(f"{r['kind']:<12}{r['code']:<12}{r['entries']:>9}{_human(r['bytes']):>11}  "
                  f"{'current' if r['current'] else 'stale (prune removes it)'}")
        total = sum(r["bytes"] for r in rows)
        print(f"total {sum(r['entries'] for r in rows)} entries, {_human(total)}")
        return 0
    if args.command == "verify":
        ok, broken = verify(root)
        print(f"{ok} entries load; {len(broken)} broken" + (" (quarantined):" if broken else ""))
        for f in broken:
            print(f"  {f}")
        return 1 if broken else 0
    removed = prune(root, stale=not args.keep_stale, older_than_days=args.older_than,
                    dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} item(s)")
    for f in removed:
        print(f"  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
