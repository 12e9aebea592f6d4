"""Exceptions. A :class:`UserError` is the user's to fix; the CLI prints it as one line."""

from __future__ import annotations

#: The helpers this module offers plugins (the public API beyond ``lingspace_harness.__all__``).
__all__ = ["error_reason", "out_of_memory"]


class UserError(Exception):
    """Something the user can fix: bad input, an unknown name, a missing file or model."""


class DataError(UserError):
    """A phenomenon's data is missing or malformed."""


class ModelError(UserError):
    """A model could not be found or loaded."""


class PluginError(UserError):
    """A plugin failed to load or register, or two plugins claim one name."""


class UnknownNameError(UserError):
    """A name (task, metric, loader, ...) that nothing registered."""


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), for a
    one-line error that wraps it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory: torch's ``OutOfMemoryError`` (CUDA), a
    RuntimeError that says so (MPS, XPU, ROCm), or the host's ``MemoryError``."""
    if isinstance(exc, MemoryError) or any(t.__name__ == "OutOfMemoryError" for t in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
