"""Physical plausibility of a reading for the device that claims it.

The protocol schema bounds each metric for any device; here the bounds come from the device's
own rating (``rated_power_w`` for every kind, ``rated_hashrate_ghs`` for miners), stored when the
device was provisioned. A margin allows for sensors and inverters running a little above their
nameplate; anything beyond it is physically implausible for that device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.envelope import Body, DeviceKind
from protocol.errors import VerificationError

MARGIN = 1.15
"""Tolerance above nameplate: inverters and hashboards briefly exceed it, never by this much."""
MIN_TEMP_DC, MAX_TEMP_DC = -400, 1000  # -40 .. 100 degC: outside this the device would be dead
MAX_IRRADIANCE = 1500  # W/m2: above the solar constant at ground level plus cloud-edge focusing


class ImplausibleError(VerificationError):
    """The reading cannot be true for this device; the message says which figure and why."""

    reason = "implausible"


def _rating(rating: Mapping[str, Any], name: str) -> int:
    value = rating.get(name)
    if type(value) is not int or value <= 0:
        raise ImplausibleError(f"device rating has no usable {name}")
    return value


def check_plausible(body: Body, rating: Mapping[str, Any]) -> None:
    """Raise :class:`ImplausibleError` unless ``body`` could come from a device with ``rating``."""
    m = body.metrics
    window = body.window_s
    power = _rating(rating, "rated_power_w")
    max_power = power * MARGIN
    max_energy = power * window / 3600 * MARGIN + 1

    def at_most(name: str, limit: float, what: str) -> None:
        if m[name] > limit:
            raise ImplausibleError(f"{name} = {m[name]} exceeds {int(limit)} ({what})")

    if "temp_dc" in m and not MIN_TEMP_DC <= m["temp_dc"] <= MAX_TEMP_DC:
        raise ImplausibleError(f"temp_dc = {m['temp_dc']} is outside {MIN_TEMP_DC}..{MAX_TEMP_DC} tenths of a degree")
    if body.kind is DeviceKind.SOLAR:
        at_most("power_w", max_power, "rated power with margin")
        at_most("energy_wh", max_energy, "rated power over the window")
        at_most("irradiance_wm2", MAX_IRRADIANCE, "the most sunlight reaching the ground")
    elif body.kind is DeviceKind.CHARGER:
        at_most("power_w", max_power, "rated power with margin")
        at_most("energy_wh", max_energy, "rated power over the window")
        at_most("active_s", window, "the window length")
        if m["grid_wh"] < m["energy_wh"]:
            raise ImplausibleError(
                f"grid_wh = {m['grid_wh']} is below energy_wh = {m['energy_wh']} (delivered more than drawn)"
            )
        at_most("sessions_started", window / 60 + 1, "one session start a minute")
    else:
        hashrate = _rating(rating, "rated_hashrate_ghs")
        at_most("hashrate_ghs", hashrate * MARGIN, "rated hashrate with margin")
        at_most("hashes_gh", hashrate * MARGIN * window, "rated hashrate over the window")
        at_most("power_w", max_power, "rated power with margin")
        at_most("energy_wh", max_energy, "rated power over the window")
        if m["uptime_s"] + m["curtailed_s"] > window:
            raise ImplausibleError(
                f"uptime_s + curtailed_s = {m['uptime_s'] + m['curtailed_s']} exceeds the window ({window} s)"
            )
