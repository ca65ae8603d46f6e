"""The one exception tree of the relay.

    RelayError                      anything the relay reports on purpose
    ├── MappingLoadError            a mapping file is invalid (.problems: every problem found)
    ├── InboundError                an inbound request is refused (.status: the HTTP status)
    │   ├── BodyError               the body cannot be parsed (400), is too large (413) or its
    │   │                           type is unknown (415)
    │   └── SignatureError          the sender could not be verified (401)
    ├── StoreUnavailable            the database cannot take the write now (503: sender retries)
    ├── EngatiError                 a call to Engati failed (.failure, .status, .code)
    ├── LookupFailed                a lookup's fetch failed (.retryable, .status)
    └── AlertError                  an alert could not be sent (.retry_after)

Each entry point catches RelayError at one place: the intake's (webhooks) and Flask's
(everything else) error handlers for HTTP, the CLI's handler for commands. Anything else
that escapes is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relay.model import FailureKind


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping file, located as precisely as the file allows."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class MappingLoadError(RelayError):
    """A mapping file (or a folder of them) failed to load; `problems` lists all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class FieldError:
    """One field of a webhook that could not be mapped, e.g. ("phone", "no value at ...").

    Not an exception: a mapping's Result lists every failing field, so that one answer names
    them all.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def field_errors(errors: Iterable[FieldError | Mapping[str, str]]) -> str:
    """Field errors as one line, `phone: no value at body.phone; flows: ...`, whether they
    come from a mapping's Result or from a stored event's rows."""
    return "; ".join(str(e) if isinstance(e, FieldError) else f"{e['field']}: {e['message']}"
                     for e in errors)


class InboundError(RelayError):
    """An inbound request is refused with `status`, a message saying what is wrong and,
    where the message alone does not say it, a `hint` saying how to fix it."""

    status = 400

    def __init__(self, message: str, status: int | None = None, hint: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.hint = hint


class BodyError(InboundError):
    """The body cannot be parsed (400), is too large (413), or its content type is not one
    we read (415)."""


class SignatureError(InboundError):
    """The sender could not be verified. `reason` is for the log; callers only see 401."""

    status = 401

    def __init__(self, reason: str):
        super().__init__("invalid signature")
        self.reason = reason


class StoreUnavailable(RelayError):
    """The database could not take a write; the sender should retry (503)."""

    @classmethod
    def from_driver(cls, exc: Exception) -> StoreUnavailable:
        # The driver's own words (e.g. "database is locked"), never the SQL or its values.
        return cls(f"the database is unavailable: {getattr(exc, 'orig', exc)}")


class EngatiError(RelayError):
    """A call to Engati did not succeed.

    `failure` says why (and so whether trying again can help: `retryable`); `status` is the
    HTTP status (None when no answer came) and `code` Engati's `status.code` when the body
    had one.
    """

    def __init__(
        self,
        message: str,
        *,
        failure: FailureKind,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.failure = failure
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.failure.retryable


class AlertError(RelayError):
    """An alert channel failed to take a message; the text names the channel's host, never
    its URL or credentials. `retry_after`: seconds the receiver asked us to wait."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LookupFailed(RelayError):
    """A lookup's fetch (relay/lookup/) did not succeed: `retryable` says whether trying
    again can help (a timeout, a 5xx, a rate limit) or not (the object is gone, the token is
    refused); `status` is the HTTP status, None when no answer came."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
