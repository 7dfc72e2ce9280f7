"""Physical plausibility of a reading for the device that claims it: the one rule.

The envelope schema bounds each metric for any device; here the bounds come from the device's
own rating (``rated_power_w`` for every kind, ``rated_hashrate_ghs`` for miners), stored when the
device was provisioned. A 15 % margin allows for sensors and inverters running a little above
their nameplate; anything beyond it is physically implausible for that device, and the gateway
quarantines it. The simulator's models are tested against this same rule, and its
``implausible`` fault is built to break it.

Integer arithmetic throughout, so a limit is exact: a value equal to its maximum passes and one
unit above fails, whatever the rating.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from protocol.envelope import Body, DeviceKind
from protocol.errors import VerificationError
from protocol.quarantine import QuarantineReason

__all__ = [
    "MARGIN_PERCENT",
    "MAX_IRRADIANCE_WM2",
    "MAX_TEMP_DC",
    "MIN_TEMP_DC",
    "ImplausibleError",
    "check_metrics",
    "check_plausible",
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
