"""The one exception type the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations


class CnnstatError(Exception):
    """A problem with the user's input: a file, a flag, a layer.

    ``where`` names the place (``file:line:col``, or ``file: layer 'conv1'``) and is
    printed before the message.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def layer_where(path: str, name: str, line: int | None = None) -> str:
    """``path:line: layer 'name'`` — the place every layer message names."""
    at = f"{path}:{line}" if line else path
    return f"{at}: layer '{name}'" if at else f"layer '{name}'"
