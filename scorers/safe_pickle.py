"""A restricted unpickler for the CIFAR python-format batches.

Those files are pickles, and a pickle can name any importable callable. This loader resolves only the
globals that the CIFAR format actually uses (numpy array and dtype reconstruction, plus latin-1 byte
strings written by Python 3 at protocol 2); containers, strings, bytes and ints need no globals at all.
Anything else is refused before it is resolved, so no foreign code can run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references something outside the CIFAR format's allow-list."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` restricted to the latin-1 round-trip Python 3 uses to pickle bytes at protocol 2."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in {"latin1", "iso88591"}:
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, source: str) -> None:
        super().__init__(stream, encoding="latin1")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self._source}: it references {module}.{name}, but CIFAR python-format "
                "files only hold numpy arrays, lists, dicts, bytes, str and ints"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: it uses persistent references")


def load_restricted(path: Path) -> Any:
    """Unpickle `path` allowing only what the CIFAR python format holds; UnsafePickleError otherwise."""
    with open(path, "rb") as stream:
        return _RestrictedUnpickler(stream, str(path)).load()
