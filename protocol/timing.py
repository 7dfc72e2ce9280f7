"""The reporting-window rules: when a device may report, as pure functions.

A reading's ``ts_ms`` is the end of the window it covers, which is ``[ts_ms - window_s * 1000,
ts_ms)``. A device is registered with one reporting window (by the registrar, on chain, and in
the gateway's store), and its readings must respect it:

1. **Registered window** (:func:`check_window`): ``window_s`` equals the registered window. A
   device that signs ``window_s = 86400`` every minute would otherwise be credited a day's
   plausible energy each minute.
2. **Never back in time** (:func:`check_spacing`): ``ts_ms >= previous_ts_ms``.
3. **At least a window apart** (:func:`check_spacing`): ``ts_ms - previous_ts_ms >= window_s *
   1000``, where ``window_s`` is the window of the reading at ``ts_ms``. This is exactly "its
   window starts no earlier than the previous window ended", so no second of device time is
   counted twice. Rule 1 makes that window the registered one, and so also the previous
   counted reading's: the choice between the two windows never matters for a counted reading.
   Equality passes: back-to-back windows are the normal case.

"Previous" means the device's last *counted* (accepted) reading along its chain. A chained
rejection (signed and linked, refused for its content) does not move it: a rejected reading's
time is not evidence, and a reading dated an hour ahead must not block the next hour. The
gateway and the auditor follow the same chain, so they agree on which reading is previous.

The reasons reuse :class:`~protocol.quarantine.QuarantineReason` where the meaning is the same:
going back in time is ``clock_skew`` (the device's clock is wrong, as for a reading dated in the
gateway's future). A wrong window is ``wrong_window`` and a reading less than a window after the
previous one is ``too_soon``.

Changing a rule here changes which anchored readings count: treat it as a format change.
"""

from __future__ import annotations

from typing import Final

from protocol.envelope import Body
from protocol.errors import VerificationError
from protocol.quarantine import QuarantineReason

__all__ = [
    "MS_PER_S",
    "BackInTimeError",
    "ClockSkewError",
    "FutureReadingError",
    "TimingError",
    "TooSoonError",
    "WrongWindowError",
    "check_not_after",
    "check_not_back_in_time",
    "check_spacing",
    "check_window",
    "earliest_next_ts_ms",
]

MS_PER_S: Final = 1000


class TimingError(VerificationError):
    """A reading breaks a reporting-window rule; the subclass and ``reason`` say which."""


class WrongWindowError(TimingError):
    """``window_s`` is not the window the device is registered with."""

    reason = QuarantineReason.WRONG_WINDOW

    def __init__(self, message: str, *, window_s: int, registered_window_s: int) -> None:
        super().__init__(message)
        self.window_s = window_s
        self.registered_window_s = registered_window_s


class ClockSkewError(TimingError):
    """The reading's time cannot be right: before its predecessor's, or in the future."""

    reason = QuarantineReason.CLOCK_SKEW


class BackInTimeError(ClockSkewError):
    """``ts_ms`` is earlier than the previous counted reading's: the chain went back in time."""

    def __init__(self, message: str, *, ts_ms: int, previous_ts_ms: int) -> None:
        super().__init__(message)
        self.ts_ms = ts_ms
        self.previous_ts_ms = previous_ts_ms


class FutureReadingError(ClockSkewError):
    """``ts_ms`` is later than the latest time the checker accepts (its clock plus a skew)."""


class TooSoonError(TimingError):
    """Less than a window after the previous counted reading: the two windows overlap."""

    reason = QuarantineReason.TOO_SOON

    def __init__(self, message: str, *, ts_ms: int, previous_ts_ms: int, window_s: int) -> None:
        super().__init__(message)
        self.ts_ms = ts_ms
        self.previous_ts_ms = previous_ts_ms
        self.window_s = window_s


def check_window(body: Body, *, registered_window_s: int) -> None:
    """Raise :class:`WrongWindowError` unless ``body.window_s == registered_window_s``."""
    if body.window_s != registered_window_s:
        raise WrongWindowError(
            f"window_s = {body.window_s} but device {body.device!r} is registered with a "
            f"{registered_window_s} s reporting window",
            window_s=body.window_s,
            registered_window_s=registered_window_s,
        )


def earliest_next_ts_ms(*, previous_ts_ms: int, window_s: int) -> int:
    """The earliest ``ts_ms`` a reading with window ``window_s`` may carry after one at
    ``previous_ts_ms`` (the simulator schedules by it)."""
    return previous_ts_ms + window_s * MS_PER_S


def check_not_back_in_time(*, previous_ts_ms: int | None, ts_ms: int) -> None:
    """Raise :class:`BackInTimeError` (``clock_skew``) if ``ts_ms < previous_ts_ms``."""
    if previous_ts_ms is not None and ts_ms < previous_ts_ms:
        raise BackInTimeError(
            f"ts_ms {ts_ms} goes back in time: the previous reading's is {previous_ts_ms}",
            ts_ms=ts_ms,
            previous_ts_ms=previous_ts_ms,
        )


def check_spacing(*, previous_ts_ms: int | None, ts_ms: int, window_s: int) -> None:
    """Raise unless a reading at ``ts_ms`` covering ``window_s`` seconds may follow the previous
    counted reading of its device, at ``previous_ts_ms`` (None: it has none, anything goes).

    :class:`BackInTimeError` (``clock_skew``) if ``ts_ms < previous_ts_ms``;
    :class:`TooSoonError` (``too_soon``) if ``ts_ms - previous_ts_ms < window_s * 1000``.
    """
    if previous_ts_ms is None:
        return
    check_not_back_in_time(previous_ts_ms=previous_ts_ms, ts_ms=ts_ms)
    earliest = earliest_next_ts_ms(previous_ts_ms=previous_ts_ms, window_s=window_s)
    if ts_ms < earliest:
        raise TooSoonError(
            f"ts_ms {ts_ms} is {ts_ms - previous_ts_ms} ms after the previous reading's {previous_ts_ms}, "
            f"less than its {window_s} s window (earliest {earliest})",
            ts_ms=ts_ms,
            previous_ts_ms=previous_ts_ms,
            window_s=window_s,
        )


def check_not_after(*, ts_ms: int, not_after_ms: int) -> None:
    """Raise :class:`FutureReadingError` if ``ts_ms > not_after_ms``. The caller chooses the
    bound from its own clock (the gateway: now plus its allowed skew), so this stays pure."""
    if ts_ms > not_after_ms:
        raise FutureReadingError(
            f"ts_ms {ts_ms} is in the future: {(ts_ms - not_after_ms) // MS_PER_S} s past {not_after_ms}, "
            "the latest time accepted (the checker's clock plus its allowed skew)"
        )
