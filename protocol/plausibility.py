"""Physical plausibility of a reading for the device that claims it: the one rule.

The envelope schema bounds each metric for any device; here the bounds come from the device's
own rating (``rated_power_w`` for every kind, ``rated_hashrate_ghs`` for miners), stored when the
device was provisioned. A 15 % margin allows for sensors and inverters running a little above
their nameplate; anything beyond it is physically implausible for that device, and the gateway
quarantines it. The simulator's models are tested against this same rule, and its
``implausible`` fault is built to break it.

Integer arithmetic throughout, so a limit is exact: a value equal to its maximum passes and one
unit above fails, whatever the rating.

:func:`check_reading` is the whole judgement of a signed, linked reading's content, in one
order that the gateway and the auditor share: kind, registered window, back in time, future (when
the caller bounds it), physical plausibility, spacing (the window rules are
:mod:`protocol.timing`'s). The first rule broken is the reason reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from protocol.envelope import Body, DeviceKind
from protocol.errors import VerificationError
from protocol.quarantine import QuarantineReason
from protocol.timing import check_not_after, check_not_back_in_time, check_spacing, check_window

__all__ = [
    "MARGIN_PERCENT",
    "MAX_IRRADIANCE_WM2",
    "MAX_TEMP_DC",
    "MIN_TEMP_DC",
    "ImplausibleError",
    "KindMismatchError",
    "check_metrics",
    "check_plausible",
    "check_reading",
    "plausible_maxima",
]

MARGIN_PERCENT: Final = 115
"""Tolerance above nameplate: inverters and hashboards briefly exceed it, never by this much."""
MIN_TEMP_DC: Final = -400  # -40 degC .. 100 degC: outside this the device would be dead
MAX_TEMP_DC: Final = 1000
MAX_IRRADIANCE_WM2: Final = 1500  # above the solar constant at ground level plus cloud-edge focusing
SESSION_START_S: Final = 60  # a charger starts at most one session a minute (plus one)
_CARRY_WH: Final = 1  # the sub-Wh remainder a meter may carry from the previous window
_HOTTEST: Final = "the hottest a working device gets"


class ImplausibleError(VerificationError):
    """The reading cannot be true for this device; the message says which figure and why."""

    reason = QuarantineReason.IMPLAUSIBLE


class KindMismatchError(VerificationError):
    """The reading claims another device kind than the one registered."""

    reason = QuarantineReason.KIND_MISMATCH


def _rating(rating: Mapping[str, Any], name: str) -> int:
    value = rating.get(name)
    if type(value) is not int or value <= 0:
        raise ImplausibleError(f"device rating has no usable {name}")
    return value


def _with_margin(value: int) -> int:
    return value * MARGIN_PERCENT // 100


def _energy_wh_max(power_w: int, window_s: int) -> int:
    return power_w * MARGIN_PERCENT * window_s // (100 * 3600) + _CARRY_WH


def _limits(kind: DeviceKind, rating: Mapping[str, Any], window_s: int) -> list[tuple[str, int, str]]:
    """(metric, maximum, why) in the order the checks run: the first broken one is reported."""
    power = _rating(rating, "rated_power_w")
    power_limits = [
        ("power_w", _with_margin(power), "rated power with margin"),
        ("energy_wh", _energy_wh_max(power, window_s), "rated power over the window"),
    ]
    if kind is DeviceKind.SOLAR:
        return [
            *power_limits,
            ("irradiance_wm2", MAX_IRRADIANCE_WM2, "the most sunlight reaching the ground"),
            ("temp_dc", MAX_TEMP_DC, _HOTTEST),
        ]
    if kind is DeviceKind.CHARGER:
        return [
            *power_limits,
            ("active_s", window_s, "the window length"),
            ("sessions_started", window_s // SESSION_START_S + 1, "one session start a minute"),
        ]
    hashrate = _rating(rating, "rated_hashrate_ghs")
    return [
        ("hashrate_ghs", _with_margin(hashrate), "rated hashrate with margin"),
        ("hashes_gh", hashrate * MARGIN_PERCENT * window_s // 100, "rated hashrate over the window"),
        *power_limits,
        ("temp_dc", MAX_TEMP_DC, _HOTTEST),
    ]


def plausible_maxima(kind: DeviceKind, rating: Mapping[str, Any], *, window_s: int) -> dict[str, int]:
    """Per metric with an upper bound of its own, the largest value a device of ``kind`` with ``rating`` may
    report for a window of ``window_s`` seconds (inclusive). Raises :class:`ImplausibleError` if
    the rating lacks a figure the kind needs. Relations (a charger's ``grid_wh >= energy_wh``, a
    miner's ``uptime_s + curtailed_s <= window_s``) and ``temp_dc >= MIN_TEMP_DC`` are checked by
    :func:`check_metrics` on top of these."""
    return {name: limit for name, limit, _why in _limits(DeviceKind(kind), rating, window_s)}


def check_metrics(kind: DeviceKind, metrics: Mapping[str, int], rating: Mapping[str, Any], *, window_s: int) -> None:
    """Raise :class:`ImplausibleError` unless ``metrics`` (schema-valid for ``kind``) could come
    from a device with ``rating`` over ``window_s`` seconds."""
    kind = DeviceKind(kind)
    m = metrics
    if "temp_dc" in m and not MIN_TEMP_DC <= m["temp_dc"] <= MAX_TEMP_DC:
        raise ImplausibleError(f"temp_dc = {m['temp_dc']} is outside {MIN_TEMP_DC}..{MAX_TEMP_DC} tenths of a degree")
    for name, limit, why in _limits(kind, rating, window_s):
        if m[name] > limit:
            raise ImplausibleError(f"{name} = {m[name]} exceeds {limit} ({why})")
    # Relations between figures of one reading, which no single maximum expresses.
    if kind is DeviceKind.CHARGER and m["grid_wh"] < m["energy_wh"]:
        raise ImplausibleError(
            f"grid_wh = {m['grid_wh']} is below energy_wh = {m['energy_wh']} (delivered more than drawn)"
        )
    if kind is DeviceKind.MINER and m["uptime_s"] + m["curtailed_s"] > window_s:
        raise ImplausibleError(
            f"uptime_s + curtailed_s = {m['uptime_s'] + m['curtailed_s']} exceeds the window ({window_s} s)"
        )


def check_plausible(body: Body, rating: Mapping[str, Any]) -> None:
    """Raise :class:`ImplausibleError` unless ``body`` could come from a device with ``rating``."""
    check_metrics(body.kind, body.metrics, rating, window_s=body.window_s)


def check_reading(
    body: Body,
    *,
    kind: DeviceKind | str,
    rating: Mapping[str, Any],
    registered_window_s: int,
    previous_ts_ms: int | None,
    not_after_ms: int | None = None,
) -> None:
    """Raise the first rule ``body`` breaks for a device registered as ``kind`` with ``rating``
    and ``registered_window_s``, whose previous counted reading is at ``previous_ts_ms`` (None:
    none yet). ``not_after_ms`` bounds ``ts_ms`` from above where the caller has a clock to
    judge by (the gateway: now plus its allowed skew); None skips that rule.

    Order: :class:`KindMismatchError`, :class:`~protocol.timing.WrongWindowError`,
    :class:`~protocol.timing.BackInTimeError`, :class:`~protocol.timing.FutureReadingError`,
    :class:`ImplausibleError`, :class:`~protocol.timing.TooSoonError`. The window comes before
    the metrics because the metric limits scale with it; spacing comes last so a reading that is
    both implausible and early is reported for its content, which is the graver fault.
    """
    if DeviceKind(kind) is not body.kind:
        raise KindMismatchError(
            f"device {body.device!r} is a {DeviceKind(kind).value}, the reading says {body.kind.value}"
        )
    check_window(body, registered_window_s=registered_window_s)
    check_not_back_in_time(previous_ts_ms=previous_ts_ms, ts_ms=body.ts_ms)
    if not_after_ms is not None:
        check_not_after(ts_ms=body.ts_ms, not_after_ms=not_after_ms)
    check_plausible(body, rating)
    check_spacing(previous_ts_ms=previous_ts_ms, ts_ms=body.ts_ms, window_s=body.window_s)
