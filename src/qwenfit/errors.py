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

TYPE_CHECKING = False  # importing typing costs start-up time; errors is imported everywhere


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


# The one table from an error class to the CLI's exit code and the service's HTTP status; the
# first class that matches wins. A pydantic ValidationError that reaches a face is a usage error
# (exit 2, HTTP 422); anything else is an internal error (exit 1, HTTP 500).
ERROR_TABLE: tuple[tuple[type[QwenfitError], int, int], ...] = (
    (UsageError, 2, 400),
    (NoFitError, 3, 409),
    (QwenfitError, 1, 422),
)


def exit_code_and_status(e: BaseException) -> tuple[int, int]:
    """(exit code, HTTP status) of `e` by ERROR_TABLE."""
    for cls, code, status in ERROR_TABLE:
        if isinstance(e, cls):
            return code, status
    if type(e).__name__ == "ValidationError" and type(e).__module__.startswith("pydantic"):
        return 2, 422
    return 1, 500


# Parts of a pydantic error location that name a union member or the request body, not a field.
_LOCATION_TAGS = {"int", "str", "float", "bool", "none", "body", "list", "dict"}

if TYPE_CHECKING:
    from pydantic import ValidationError


def validation_message(e: ValidationError) -> str:
    """pydantic's first complaint as one line naming the field and the value, for every face
    and every record: "invalid parallel 0: must be greater than or equal to 1"."""
    first = e.errors()[0]
    loc = [
        str(x)
        for x in first["loc"]
        if not (isinstance(x, str) and (x in _LOCATION_TAGS or "-" in x or "[" in x))
    ]
    field = ".".join(loc) or "value"
    msg = first["msg"].removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    elif first["type"] == "extra_forbidden":
        msg = "not an option"
    elif first["type"] == "missing":
        msg = "required"
    value = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") else " " + _short(value)
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return " ".join(f"invalid {field}{shown}: {msg}{more}".split())[:500]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
