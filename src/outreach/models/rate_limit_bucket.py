"""Rate-limit windows; defined beside the kit's limiter."""

from outreach.kit.tables import RateLimitBucket

__all__ = ["RateLimitBucket"]
