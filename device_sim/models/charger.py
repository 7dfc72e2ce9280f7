"""An EV charging pile: arrivals by hour of day, vehicles, sessions and tapering charge."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import ClassVar, Final

from device_sim.models.common import (
    JsonState,
    WindowedModel,
    check_ints,
    check_range,
    local_hour,
)
from protocol.envelope import DeviceKind

_AC_MAX_W: Final = 22_000  # IEC 61851 mode 3 AC tops out at 22 kW (32 A three-phase)
_DEFAULT_CHARGER_W: Final = 7_000

# Relative arrival rate per local hour: morning commute, a lunchtime shoulder and an evening
# peak after work, shaped after public-charger utilisation studies (e.g. the Netherlands'
# ElaadNL open data and the US NREL EVI-Pro profiles).
_HOURLY_PROFILE: Final = (
    0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 1.4, 1.1, 1.1,
    1.3, 1.2, 1.0, 1.0, 1.2, 1.6, 2.0, 2.0, 1.7, 1.3, 0.9, 0.5,
)  # fmt: skip
_PROFILE_SUM: Final = sum(_HOURLY_PROFILE)
_PROFILE_PEAK: Final = max(_HOURLY_PROFILE)

# (battery Wh, max AC W, max DC W, share): the mix of Hong Kong's best-selling EVs. Examples:
# Nissan Leaf 40 kWh, BYD Atto 3 60 kWh, MG4 64 kWh, Tesla Model Y Long Range 75 kWh.
_VEHICLES: Final = (
    (40_000, 6_600, 46_000, 0.15),
    (60_000, 7_000, 88_000, 0.35),
    (64_000, 11_000, 135_000, 0.20),
    (75_000, 11_000, 250_000, 0.30),
)
_TAPER_SOC: Final = 0.8  # constant-current to here, then power falls linearly to zero at 100 %
_MIN_DWELL_S: Final = 180  # plugging in, authorising and a handshake take minutes
_NO_SESSION: Final = -1


def _charge_time_s(soc: float, target: float, capacity_wh: float, power_w: float) -> float:
    """Seconds to charge from ``soc`` to ``target`` under the constant-current/taper curve."""
    seconds = 0.0
    if soc < _TAPER_SOC:
        bulk_end = min(_TAPER_SOC, target)
        seconds += (bulk_end - soc) * capacity_wh / power_w * 3600
        soc = bulk_end
    if target > soc:
        tau = capacity_wh * (1 - _TAPER_SOC) / power_w * 3600
        seconds += tau * math.log((1 - soc) / (1 - target))
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerRating:
    """One single-connector charging pile.

    - ``rated_power_w``: output power in W: 7 kW for an AC wallbox (single phase 32 A), 60 or
      120 kW for a DC fast charger. Up to 22 kW is treated as AC.
    - ``efficiency_bp``: delivered / drawn energy in basis points, as the site's grid meter sees
      it: about 93 % for AC (transformer, cabling and standby electronics; the pile itself is
      little more than a contactor) and 95 % for DC (rectifiers run at 94-96 %).
    - ``sessions_per_day``: vehicles that would arrive per day if the pile were always free;
      arrivals while it is occupied go elsewhere. Defaults: 4 for AC, 14 for 60 kW DC, 18 for
      120 kW DC, a busy public site.

    :meth:`for_power_kw` gives the defaults for a power class.
    """

    rated_power_w: int = _DEFAULT_CHARGER_W
    efficiency_bp: int = 9_300
    sessions_per_day: int = 4

    def __post_init__(self) -> None:
        check_range(self, "rated_power_w", 1_000, 1_000_000)
        check_range(self, "efficiency_bp", 5_000, 10_000)
        check_range(self, "sessions_per_day", 0, 1_000)

    @property
    def is_dc(self) -> bool:
        return self.rated_power_w > _AC_MAX_W

    @classmethod
    def for_power_kw(cls, power_kw: int) -> ChargerRating:
        return cls.for_power_w(power_kw * 1000)

    @classmethod
    def for_power_w(cls, power_w: int) -> ChargerRating:
        if power_w <= _AC_MAX_W:
            return cls(rated_power_w=power_w, efficiency_bp=9_300, sessions_per_day=4)
        return cls(rated_power_w=power_w, efficiency_bp=9_500, sessions_per_day=14 if power_w < 100_000 else 18)

    @classmethod
    def from_json(cls, obj: Mapping[str, int]) -> ChargerRating:
        """A rating from stored integers; fields left out take the defaults of the power class."""
        checked = check_ints(cls, obj)
        return replace(cls.for_power_w(checked.get("rated_power_w", _DEFAULT_CHARGER_W)), **checked)


class ChargingPile(WindowedModel):
    """A charging pile serving one vehicle at a time.

    Arrivals are a non-homogeneous Poisson process (sampled by thinning) whose rate follows the
    hour of day (:data:`_HOURLY_PROFILE`). Each vehicle is drawn from a fleet mix and arrives
    at 10-60 % state of charge (SoC) wanting 70-95 %; it charges at min(pile, vehicle limit)
    until 80 % SoC, then the power tapers linearly to zero at 100 % (the constant-voltage
    phase), so sessions deliver about 10-60 kWh. On AC the vehicle stays parked (lognormal,
    median 3 h) and charging stops when the target or the departure comes first; on DC the
    driver leaves 1-10 minutes after the target, or earlier in 15 % of sessions. A session is
    plug-in to unplug; ``active_s`` counts only the seconds the vehicle draws power.
    Grid energy is delivered energy divided by the pile's efficiency.
    """

    __slots__ = ("_capacity_wh", "_depart_ms", "_g_carry", "_session_w", "_soc", "_target", "rating")
    kind: ClassVar[DeviceKind] = DeviceKind.CHARGER

    def __init__(self, *, seed: int, rating: ChargerRating | None = None) -> None:
        super().__init__(seed=seed)
        self.rating = ChargerRating() if rating is None else rating
        self._g_carry = 0.0
        self._depart_ms = _NO_SESSION
        self._soc = self._target = self._capacity_wh = self._session_w = 0.0

    def rating_json(self) -> dict[str, int]:
        return asdict(self.rating)

    def _rate_per_s(self, t_s: float) -> float:
        return self.rating.sessions_per_day * _HOURLY_PROFILE[local_hour(t_s)] / _PROFILE_SUM / 3600

    def _next_arrival(self, rng: random.Random, start_s: float, t: float, window_s: float) -> float | None:
        """Seconds into the window of the next arrival after ``t``, or None if none before its end."""
        peak = self.rating.sessions_per_day * _PROFILE_PEAK / _PROFILE_SUM / 3600
        if peak <= 0:
            return None
        while True:
            t += rng.expovariate(peak)
            if t >= window_s:
                return None
            if rng.random() * peak < self._rate_per_s(start_s + t):
                return t

    def _plug_in(self, rng: random.Random, arrival_ms: int) -> None:
        capacity, ac_w, dc_w, _ = rng.choices(_VEHICLES, weights=[v[3] for v in _VEHICLES])[0]
        dc = self.rating.is_dc
        self._capacity_wh = float(capacity)
        self._session_w = float(min(self.rating.rated_power_w, dc_w if dc else ac_w))
        self._soc = rng.uniform(0.1, 0.4) if dc else rng.uniform(0.2, 0.6)
        self._target = rng.uniform(0.7, 0.9) if dc else rng.uniform(0.8, 0.95)
        if dc:
            charging = _charge_time_s(self._soc, self._target, self._capacity_wh, self._session_w)
            if rng.random() < 0.15:
                charging *= rng.uniform(0.3, 0.9)
            dwell = charging + rng.uniform(60, 600)
        else:
            dwell = min(14 * 3600.0, max(1200.0, rng.lognormvariate(math.log(3 * 3600), 0.7)))
        self._depart_ms = arrival_ms + int(max(_MIN_DWELL_S, dwell) * 1000)

    def _charge(self, dt: float) -> tuple[float, float]:
        """Charge the plugged-in vehicle for up to ``dt`` seconds: (Wh delivered, seconds drawing)."""
        soc, target, cap, power = self._soc, self._target, self._capacity_wh, self._session_w
        if soc >= target:
            return 0.0, 0.0
        energy = active = 0.0
        if soc < _TAPER_SOC:
            bulk_end = min(_TAPER_SOC, target)
            bulk_s = (bulk_end - soc) * cap / power * 3600
            if dt < bulk_s:
                self._soc = soc + power * dt / 3600 / cap
                return power * dt / 3600, dt
            energy, active, dt, soc = (bulk_end - soc) * cap, bulk_s, dt - bulk_s, bulk_end
        if soc < target:
            tau = cap * (1 - _TAPER_SOC) / power * 3600
            remaining_s = tau * math.log((1 - soc) / (1 - target))
            if dt >= remaining_s:
                new_soc, run = target, remaining_s
            else:
                new_soc, run = 1 - (1 - soc) * math.exp(-dt / tau), dt
            energy += (new_soc - soc) * cap
            active += run
            soc = new_soc
        self._soc = soc
        return energy, active

    def step(self, *, start_ms: int, window_s: int) -> dict[str, int]:
        rng, gap_s = self._begin(start_ms, window_s)
        started = ended = 0
        if gap_s > 0 and self._depart_ms != _NO_SESSION:
            # The pile was not simulated during the gap: the vehicle left unseen, and its end is
            # counted here so that starts and ends still balance.
            self._depart_ms = _NO_SESSION
            ended += 1
        start_s = start_ms / 1000
        window = float(window_s)
        energy_wh = active_s = 0.0
        t = 0.0
        while True:
            if self._depart_ms != _NO_SESSION:
                depart = (self._depart_ms - start_ms) / 1000
                segment_end = min(window, depart)
                if segment_end > t:
                    e, a = self._charge(segment_end - t)
                    energy_wh += e
                    active_s += a
                if depart > window:
                    break
                t = max(t, depart)
                self._depart_ms = _NO_SESSION
                ended += 1
            arrival = self._next_arrival(rng, start_s, t, window)
            if arrival is None:
                break
            t = arrival
            started += 1
            self._plug_in(rng, start_ms + round(arrival * 1000))
        grid_wh = energy_wh * 10_000 / self.rating.efficiency_bp
        delivered = self._report_wh(energy_wh)
        # Rounding each counter separately could report less grid than delivered energy in a
        # window; report at least the delivered figure and let the carry (briefly negative) absorb it.
        grid_total = self._g_carry + grid_wh
        drawn = max(math.floor(grid_total), delivered)
        self._g_carry = grid_total - drawn
        return {
            "energy_wh": delivered,
            "grid_wh": drawn,
            "sessions_started": started,
            "sessions_ended": ended,
            "active_s": min(window_s, round(active_s)),
            "power_w": round(energy_wh * 3600 / window_s),
        }

    def state_json(self) -> JsonState:
        return {
            **self._base_state(),
            "g_carry": self._g_carry,
            "depart_ms": self._depart_ms,
            "soc": self._soc,
            "target": self._target,
            "capacity_wh": self._capacity_wh,
            "session_w": self._session_w,
        }

    def restore(self, state: Mapping[str, int | float]) -> None:
        self._restore_base(state, self.state_json())
        if type(state["depart_ms"]) is not int:
            raise ValueError(f"state depart_ms must be an int, got {state['depart_ms']!r}")
        self._g_carry = float(state["g_carry"])
        self._depart_ms = int(state["depart_ms"])
        self._soc = float(state["soc"])
        self._target = float(state["target"])
        self._capacity_wh = float(state["capacity_wh"])
        self._session_w = float(state["session_w"])
