"""The time window every token format shares: expiry and not-before, with a clock-skew leeway."""

from __future__ import annotations

from gateway.errors import Denial, TokenDenied


def check_window(*, expires_at: float, not_before: float | None, now: float, leeway: float, exclusive: bool) -> None:
    """Expired when `now > expires_at`, or `now >= expires_at` when `exclusive` (JWT/CWT `exp`,
    CloudFront's DateLessThan); not yet valid when `now < not_before`. The leeway widens both ends.
    Raises TokenDenied with the values involved."""
    late = now >= expires_at + leeway if exclusive else now > expires_at + leeway
    if late:
        raise TokenDenied(
            Denial.EXPIRED,
            f"token expired at {_seconds(expires_at)}, now {int(now)}",
            {"expires_at": expires_at, "now": int(now)},
        )
    if not_before is not None and now < not_before - leeway:
        raise TokenDenied(
            Denial.NOT_YET_VALID,
            f"token not valid before {_seconds(not_before)}, now {int(now)}",
            {"not_before": not_before, "now": int(now)},
        )


def _seconds(value: float) -> str:
    """Epoch seconds as people read them: 1800000000, not 1.8e+09."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
