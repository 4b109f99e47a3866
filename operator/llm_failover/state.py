"""The provider states (docs/reference.md#states) and which of them eject a provider at once."""

from enum import StrEnum


class ProviderState(StrEnum):
    HEALTHY = "Healthy"
    GEO_BLOCKED = "GeoBlocked"
    UNAUTHORIZED = "Unauthorized"
    QUOTA_EXHAUSTED = "QuotaExhausted"
    MODEL_UNAVAILABLE = "ModelUnavailable"
    RATE_LIMITED = "RateLimited"
    SERVER_ERROR = "ServerError"
    TIMEOUT = "Timeout"
    UNREACHABLE = "Unreachable"
    UNKNOWN = "Unknown"

    @property
    def is_hard(self) -> bool:
        """Hard states never heal by retrying: a human must act, so they eject at once."""
        return self in _HARD

    @property
    def is_soft(self) -> bool:
        """Soft states may be transient: they eject only after a streak."""
        return self in _SOFT


_HARD = frozenset(
    {
        ProviderState.GEO_BLOCKED,
        ProviderState.UNAUTHORIZED,
        ProviderState.QUOTA_EXHAUSTED,
        ProviderState.MODEL_UNAVAILABLE,
    }
)
_SOFT = frozenset(
    {
        ProviderState.RATE_LIMITED,
        ProviderState.SERVER_ERROR,
        ProviderState.TIMEOUT,
        ProviderState.UNREACHABLE,
    }
)
