"""Named registries: the extension points of rbp.

Every place a researcher extends rbp (a linear solver, a forward relaxation
method, an optimizer, an activation, a loss) is a :class:`Registry`: a name
maps to one function or object with one signature, dispatch happens in one
place, and a public ``register_*`` function adds an entry from user code.

Examples
--------
>>> reg = Registry("method")
>>> @reg.register("double")
... def double(x):
...     return 2 * x
>>> reg["double"](3), "double" in reg, reg.names()
(6, True, ('double',))
>>> reg["duble"]
Traceback (most recent call last):
...
ValueError: method must be one of ['double'], got 'duble'; did you mean 'double'?
"""

from __future__ import annotations

from .validation import unknown_name_message

__all__ = ["Registry"]

_MISSING = object()


class Registry:
    """An ordered map name -> entry with did-you-mean lookups.

    Parameters
    ----------
    argument : str
        The argument name users pass entries by (``"backward"``,
        ``"optimizer"``...), used in error messages.
    check : callable ``(name, entry) -> None``, optional
        Validates an entry when it is registered (raise ValueError).
    """

    def __init__(self, argument: str, check=None):
        self.argument = argument
        self._entries: dict = {}
        self._check = check

    def register(self, name: str, entry=None, *, overwrite: bool = False):
        """Add ``entry`` under ``name``; usable as a decorator when ``entry`` is omitted.

        A name already taken is an error unless ``overwrite=True`` (so a
        typo cannot silently replace a built-in).
        """
        if entry is None:
            return lambda obj: self.register(name, obj, overwrite=overwrite)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.argument} names must be non-empty strings, got {name!r}")
        if name in self._entries and not overwrite:
            raise ValueError(
                f"{self.argument} {name!r} is already registered; pass overwrite=True to replace it"
            )
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove a user entry (for tests and notebooks)."""
        self.get(name)
        del self._entries[name]

    def get(self, name, default=_MISSING, *, argument: str | None = None):
        """The entry for ``name``; ``default`` when given, else a ValueError listing the valid names and the nearest."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default
            raise ValueError(unknown_name_message(argument or self.argument, name, self._entries)) from None

    def __getitem__(self, name):
        return self.get(name)

    def __setitem__(self, name, entry):
        self.register(name, entry, overwrite=True)

    def __delitem__(self, name):
        self.unregister(name)

    def __contains__(self, name) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __repr__(self):
        return f"Registry({self.argument!r}: {', '.join(self._entries)})"
