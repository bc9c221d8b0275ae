"""The one exception hierarchy of qwenfit.

    QwenfitError                     base; the CLI maps it to exit 1
    ├── SpecError                    the spec table (or a --specs file) is missing or invalid
    ├── BadFileError                 a file given to qwenfit cannot be read or is malformed
    ├── UsageError (ValueError)      a bad value from the caller; the CLI maps it to exit 2
    │   ├── UnknownModelError (KeyError)   a model name not in the table (with did-you-mean)
    │   └── UnsupportedError             a precision, KV type or option the runtime cannot use
    ├── ProbeError                   a hardware source failed in a way the caller must see
    └── NoFitError                   nothing fits the machine; the CLI maps it to exit 3

Library code raises these and never exits the process; `cli.options` (the CLI) and
`serve.service` (HTTP statuses) are the only places that turn them into exit codes.
"""

from __future__ import annotations


class QwenfitError(Exception):
    """Base class of every error qwenfit raises on purpose."""


class SpecError(QwenfitError):
    """The spec table cannot be read or does not validate."""


class BadFileError(QwenfitError):
    """A file (checkpoint, machine file, cache entry) is unreadable, too large or malformed;
    the message names the file, the field and what is allowed. Exit 1."""


class UsageError(QwenfitError, ValueError):
    """A value given by the caller is not allowed; the message names it and what is allowed."""


class UnknownModelError(UsageError, KeyError):
    """A model name that matches no model of the spec table."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedError(UsageError):
    """A combination the chosen runtime cannot load or run."""


class ProbeError(QwenfitError):
    """A hardware probe failed and no partial result makes sense."""


class NoFitError(QwenfitError):
    """Nothing (or not the requested configuration) fits the machine."""
