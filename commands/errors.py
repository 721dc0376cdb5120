"""Domain errors. Each has a stable `problem` slug that the HTTP edge turns into a problem type."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a command or query may raise on purpose."""

    problem = "domain-error"
    status = 400
    title = "The request cannot be carried out"

    def __init__(self, detail: str = "", **extensions):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions


class ValidationFailed(DomainError):
    problem, status, title = "validation-failed", 400, "The request is not valid"


class UsernameTaken(DomainError):
    problem, status, title = "username-taken", 409, "That username is already registered"


class EmailTaken(DomainError):
    problem, status, title = "email-taken", 409, "That email address is already used"


class UnknownUser(DomainError):
    problem, status, title = "user-not-found", 404, "No such user"


class UnknownEmail(DomainError):
    problem, status, title = "email-not-found", 400, "Email does not exist"


class InvalidCode(DomainError):
    problem, status, title = "invalid-code", 400, "The code is wrong, expired or already used"


class AlreadyConfirmed(DomainError):
    problem, status, title = "already-confirmed", 409, "The account is already confirmed"


class NotConfirmed(DomainError):
    problem, status, title = "account-not-confirmed", 403, "The account is not confirmed yet"


class UnknownRole(DomainError):
    problem, status, title = "unknown-role", 400, "No such role"


class RoleRequired(DomainError):
    problem, status, title = "role-required", 403, "This needs a role the caller does not have"


class InvalidCredentials(DomainError):
    problem, status, title = "invalid-credentials", 401, "Unknown user or wrong password"


class TooManyAttempts(DomainError):
    problem, status, title = "too-many-attempts", 429, "Too many failed attempts; try again later"

    def __init__(self, detail: str = "", retry_after: int = 60):
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class InvalidToken(DomainError):
    problem, status, title = "invalid-token", 401, "The token is missing, invalid, expired or revoked"


class TokenExpired(InvalidToken):
    problem, status, title = "token-expired", 401, "The access token has expired; refresh it"


class DeviceNameTaken(DomainError):
    problem, status, title = "device-already-registered", 409, "A device with this name is already registered"


class DeviceNotFound(DomainError):
    problem, status, title = "device-not-found", 404, "No such device"


class InvalidCertificateRequest(DomainError):
    problem, status, title = "invalid-csr", 400, "The certificate signing request cannot be used"


class ConcurrentChange(DomainError):
    problem, status, title = "conflict", 409, "Someone else changed this at the same time; retry"


class DeviceOffline(DomainError):
    problem, status, title = "device-offline", 503, "The device is not connected"


class DeviceTimeout(DomainError):
    problem, status, title = "device-timeout", 504, "The device did not answer in time"


class DeviceCallFailed(DomainError):
    problem, status, title = "device-call-failed", 502, "The device call failed"


class SignerUnavailable(DomainError):
    problem, status, title = "signer-unavailable", 503, "The certificate signer is unavailable; retry later"
