"""Reading pickles we did not write: only the classes a caller names.

``pickle.load`` runs whatever code a file names (any importable callable with
any arguments), so a benchmark file downloaded from elsewhere must never go
through it. :class:`RestrictedUnpickler` resolves a global only if the caller
admitted that exact ``(module, name)`` and maps it to an object of the
caller's choosing (usually a plain record class of ours, never the file's own
code); everything else is refused with an error naming the file and the
global. Built-in containers and numbers (dict, list, tuple, str, float ...)
need no global and load as usual.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, BinaryIO

from nas_tf.benchmarks.base import BenchmarkError


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only the globals it is given.

    Args:
        file: the binary stream.
        admitted: ``{(module, name): object}``: what each admitted global
            resolves to.
        source: the file's name, for messages.

    Example:

    >>> import collections
    >>> data = pickle.dumps(collections.OrderedDict(a=1))
    >>> RestrictedUnpickler(io.BytesIO(data), {("collections", "OrderedDict"): dict}, "x.pkl").load()
    {'a': 1}
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(print)), {}, "x.pkl").load()
    Traceback (most recent call last):
    ...
    nas_tf.benchmarks.base.BenchmarkError: x.pkl: refused to load builtins.print (this reader admits only: nothing)
    """

    def __init__(self, file: BinaryIO, admitted: Mapping[tuple[str, str], Any], source: str):
        super().__init__(file)
        self.admitted = dict(admitted)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.admitted[(module, name)]
        except KeyError:
            names = ", ".join(sorted(f"{m}.{n}" for m, n in self.admitted)) or "nothing"
            raise BenchmarkError(
                f"{self.source}: refused to load {module}.{name} (this reader admits only: {names})"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise BenchmarkError(f"{self.source}: refused a persistent id {pid!r}")


def restricted_loads(data: bytes, admitted: Mapping[tuple[str, str], Any], source: str) -> Any:
    """Unpickles ``data`` with :class:`RestrictedUnpickler`; any failure is a :class:`BenchmarkError`.

    Args:
        data: the pickle bytes.
        admitted: ``{(module, name): object}`` the file may name.
        source: the file's name, for messages.

    Returns:
        The unpickled object.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), admitted, source).load()
    except BenchmarkError:
        raise
    except Exception as e:  # a truncated or corrupt stream: pickle raises many kinds
        raise BenchmarkError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


class Record:
    """A plain attribute holder that stands in for a class named by a pickle.

    ``NEWOBJ`` creates it without arguments and ``BUILD`` fills its
    ``__dict__``; it has no behaviour of its own. Subclass it once per
    admitted class so records of different kinds stay apart.
    """

    def __init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"
