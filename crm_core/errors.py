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
