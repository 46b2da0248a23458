"""Errors the core raises; the application maps them to HTTP answers at its edge."""


class CoreError(Exception):
    """Base of every error the core raises on purpose."""


class NotFound(CoreError):
    pass


class Forbidden(CoreError):
    pass


class Conflict(CoreError):
    pass


class InvalidTransition(CoreError):
    pass


class InvalidInput(CoreError):
    """Input that breaks a domain rule; ``field`` names the offending field when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DeliveryError(CoreError):
    """A provider (the phone network, a mail server) did not take an outbound message: the one error
    every outbox sender reads. Exactly one of three things holds:

    - ``retryable``: the provider certainly did not act on it (no connection was made, a
      temporary refusal, a request to slow down): it is tried again later;
    - ``unconfirmed``: it may have reached the provider and its outcome is unknown: it is settled
      by asking the provider, never sent again blindly;
    - neither (``permanent``): the provider refused it; it fails, with ``code`` when there is one.

    ``permanent=`` is the mail transports' way of saying it (a 5xx answer, else a 4xx one that is
    worth another try).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        unconfirmed: bool = False,
        code: int | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message)
        if permanent is not None:
            retryable, unconfirmed = not permanent, False
        self.retryable = retryable
        self.unconfirmed = unconfirmed and not retryable
        self.code = code

    @property
    def permanent(self) -> bool:
        """Refused: neither worth another try nor possibly sent."""
        return not self.retryable and not self.unconfirmed


class GatewayError(DeliveryError):
    """The phone network refused or failed a request.

    ``code`` is the provider's error code (Twilio's 21211, 21610, ...); ``retryable`` is true only
    when the provider cannot have acted on the request (the connection was never made, or it
    asked to slow down), so sending it again is safe. ``unconfirmed``: the request may have
    reached the provider and its outcome is unknown (no answer, a connection lost after sending,
    a 5xx); by default, an error with neither code nor status that is not retryable.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retryable: bool = False,
        unconfirmed: bool | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, code=code)
        self.status = status
        self.unconfirmed = (
            unconfirmed if unconfirmed is not None else (code is None and status is None and not retryable)
        )
