"""Exceptions raised by the model."""


class GoRuntimeError(RuntimeError):
    """A fault the Go runtime would throw on: a bad pointer, a double free, use after close."""
