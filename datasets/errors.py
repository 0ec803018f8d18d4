"""The one error type of the data layer: a message that names the file (and line)."""

from __future__ import annotations

from pathlib import Path


class MidgError(Exception):
    """Any error a user can fix (bad input, bad config, a busy output): the CLI prints its
    message, without a traceback, and exits with status 2."""


class ConfigError(MidgError):
    """A bad parameter: unknown key or choice (the message lists the valid ones)."""


class DatasetError(MidgError):
    """Bad input or a failed write. The CLI prints the message and exits non-zero.

    `where` is the file (and line, for text files) that holds the problem, so a user
    can open it; the message says what is wrong with it.
    """

    def __init__(self, where: str | Path | None, problem: str, line: int | None = None):
        self.where = str(where) if where is not None else None
        self.line = line
        self.problem = problem
        if self.where is None:
            text = problem
        elif line is None:
            text = f"{self.where}: {problem}"
        else:
            text = f"{self.where}:{line}: {problem}"
        super().__init__(text)
