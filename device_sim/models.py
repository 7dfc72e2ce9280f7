"""Physics models of the simulated devices: a rooftop solar string, an EV charging pile and a
hydro-cooled bitcoin mining rig.

Each model turns *simulated* time into one reading's metrics, exactly the names, units and
integer ranges of :data:`protocol.envelope.METRICS`. Models do no I/O and never read a clock:
``step(start_ms=..., window_s=...)`` covers the window ``[start_ms, start_ms + window_s * 1000)``
(integer milliseconds UTC, any length from 1 s to a day) and advances the model's state, so
consecutive windows are continuous (an energy remainder, a charging session, a cloud or an
outage carries over). A window that starts later than the previous one ended is a gap: the
model lets its random processes evolve across it, ends an ongoing charging session (the pile
was not being simulated) and reports only the window itself. A window that starts before the
previous one ended is refused.

Randomness is deterministic per device: each window draws from its own ``random.Random``
seeded with ``(kind, seed, window number)``, never from the global generator. The whole state
of a model is therefore a handful of numbers (:meth:`state_json`), so a fleet of 10,000 devices
stays small and a restarted runner continues exactly where it stopped (:meth:`restore`).

Sub-Wh energy is carried between windows instead of being floored away, so 1-second readings
lose nothing to rounding: the reported energies always sum to within 1 Wh of the energy the
model simulated. That carry is why :mod:`protocol.plausibility` allows 1 Wh above the rated power
times the window (with its margin); the tests hold every model's output to that rule.

Location: Hong Kong (22.3 N, 114.17 E, UTC+8 all year, no daylight saving time).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar, Final, Protocol, TypeVar

from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, Body, DeviceKind

__all__ = [
    "ChargerRating",
    "ChargingPile",
    "DeviceModel",
    "MinerRating",
    "MiningRig",
    "SolarPanel",
    "SolarRating",
    "ambient_c",
    "build_model",
    "clear_sky_poa_wm2",
    "should_curtail",
]

LATITUDE_DEG: Final = 22.3
LONGITUDE_DEG: Final = 114.17
UTC_OFFSET_S: Final = 8 * 3600

_MAX_WINDOW_S: Final = 86_400  # protocol.envelope.Body admits windows of at most a day

JsonState = dict[str, int | float]


# --- shared helpers -------------------------------------------------------------------------


def _local_hour(t_s: float) -> int:
    return int((t_s + UTC_OFFSET_S) % 86_400 // 3600)


def _year_angle(t_s: float) -> float:
    """Fractional-year angle (radians, about 0 at 1 January 00:00 UTC), the argument of
    Spencer's series; counting tropical years keeps the seasons in phase over decades."""
    days = (t_s - 946_684_800) / 86_400  # since 2000-01-01T00:00Z
    return 2 * math.pi * (days % 365.2422) / 365.2422


def _ou(rng: random.Random, value: float, mean: float, sd: float, tau_s: float, dt_s: float) -> float:
    """Exact Ornstein-Uhlenbeck (continuous AR(1)) update over ``dt_s`` seconds: mean-reverting
    with time constant ``tau_s`` and stationary standard deviation ``sd``. Exact for any step,
    so a 1 s window and a 1 day window see the same process."""
    decay = math.exp(-dt_s / tau_s)
    return mean + (value - mean) * decay + sd * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)


def _check_ints(cls: type, obj: Mapping[str, int]) -> dict[str, int]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown rating fields {unknown}")
    for name, value in obj.items():
        if type(value) is not int:
            raise ValueError(f"{cls.__name__}.{name} must be an int, got {value!r}")
    return dict(obj)


def _check_range(owner: object, name: str, low: int, high: int) -> None:
    value = getattr(owner, name)
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{type(owner).__name__}.{name} must be an int in {low}..{high}, got {value!r}")


class DeviceModel(Protocol):
    """What the fleet runner needs from a model."""

    kind: ClassVar[DeviceKind]

    def step(self, *, start_ms: int, window_s: int) -> dict[str, int]: ...

    def rating_json(self) -> dict[str, int]: ...

    def state_json(self) -> JsonState: ...

    def restore(self, state: Mapping[str, int | float]) -> None: ...


class _Model:
    """Window bookkeeping shared by the models: argument checks, gap detection, the per-window
    random generator, and the state every model persists."""

    __slots__ = ("_e_carry", "_last_end_ms", "_seed", "_steps")
    kind: ClassVar[DeviceKind]

    def __init__(self, *, seed: int) -> None:
        if type(seed) is not int:
            raise ValueError(f"seed must be an int, got {seed!r}")
        self._seed = seed
        self._steps = 0
        self._last_end_ms = -1  # no window yet
        self._e_carry = 0.0  # Wh measured but not yet reported (always in [0, 1))

    def _begin(self, start_ms: int, window_s: int) -> tuple[random.Random, float]:
        """Validate a window and return its generator and the gap (s) since the previous one."""
        if type(start_ms) is not int or start_ms < 0:
            raise ValueError(f"start_ms must be a non-negative int, got {start_ms!r}")
        if type(window_s) is not int or not 1 <= window_s <= _MAX_WINDOW_S:
            raise ValueError(f"window_s must be an int in 1..{_MAX_WINDOW_S}, got {window_s!r}")
        if 0 <= start_ms < self._last_end_ms:
            raise ValueError(f"window starts at {start_ms} ms, before the previous one ended at {self._last_end_ms} ms")
        gap_s = 0.0 if self._last_end_ms < 0 else (start_ms - self._last_end_ms) / 1000
        # A fresh generator per window, seeded by (kind, seed, window number): the state to
        # persist is one counter instead of a Mersenne Twister's 625 words.
        rng = random.Random(f"{self.kind.value}:{self._seed}:{self._steps}")  # noqa: S311 - simulation, not secrets
        self._steps += 1
        self._last_end_ms = start_ms + window_s * 1000
        return rng, gap_s

    def _report_wh(self, energy_wh: float) -> int:
        total = self._e_carry + energy_wh
        whole = math.floor(total)
        self._e_carry = total - whole
        return whole

    def _base_state(self) -> JsonState:
        return {"seed": self._seed, "steps": self._steps, "last_end_ms": self._last_end_ms, "e_carry": self._e_carry}

    def _restore_base(self, state: Mapping[str, int | float], expected: JsonState) -> None:
        if set(state) != set(expected):
            raise ValueError(f"{type(self).__name__} state must have keys {sorted(expected)}, got {sorted(state)}")
        if state["seed"] != self._seed:
            raise ValueError(f"state belongs to seed {state['seed']}, this model has seed {self._seed}")
        for name in ("steps", "last_end_ms"):
            if type(state[name]) is not int:
                raise ValueError(f"state {name} must be an int, got {state[name]!r}")
        self._steps = int(state["steps"])
        self._last_end_ms = int(state["last_end_ms"])
        self._e_carry = float(state["e_carry"])


# --- solar panel ----------------------------------------------------------------------------

# Clear-sky index k = G / G_clear = 0.08 + 0.92 * logistic(x), x = mean + weather + cloud: two
# mean-reverting processes, one for weather systems (days) and one for passing clouds (tens of
# minutes), around a seasonal mean that is dullest in mid-March and brightest in mid-September,
# following the Hong Kong Observatory's monthly sunshine normals (March about 90 h, July to
# October 180-210 h). The long-run mean of k is then about 0.6 and a 5 kWp string yields about
# 1,150-1,250 kWh per kWp a year (15-18 kWh a day), in line with Hong Kong rooftop systems.
_CLOUD_MEAN: Final = 0.1
_CLOUD_SEASONAL: Final = 0.5
_CLOUD_BRIGHTEST: Final = 2 * math.pi * 258 / 365  # mid-September
_WEATHER_SD: Final = 1.0
_WEATHER_TAU_S: Final = 2 * 86_400.0
_CLOUD_SD: Final = 0.8
_CLOUD_TAU_S: Final = 20 * 60.0
_SOLAR_SUBSTEP_S: Final = 300  # sun position and clouds are sampled at least every 5 minutes
_ALBEDO: Final = 0.2  # ground reflectance of a typical urban surface
_INVERTER_WAKE: Final = 0.01  # string inverters start exporting at about 1 % of rated power


def _sun(t_s: float) -> tuple[float, float, float]:
    """Unit vector towards the sun (east, north, up) at ``t_s`` (s UTC) in Hong Kong.

    Declination and equation of time from Spencer's Fourier series (J. W. Spencer, "Fourier
    series representation of the position of the sun", Search 2(5), 1971), as used by NOAA's
    "General Solar Position Calculations"; hour angle from true solar time at 114.17 E.
    """
    g = _year_angle(t_s)
    eqtime_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    solar_min = (t_s % 86_400) / 60 + eqtime_min + 4 * LONGITUDE_DEG
    hour_angle = math.radians(solar_min / 4 - 180)
    lat = math.radians(LATITUDE_DEG)
    up = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    north = math.cos(lat) * math.sin(decl) - math.sin(lat) * math.cos(decl) * math.cos(hour_angle)
    east = -math.cos(decl) * math.sin(hour_angle)
    return east, north, up


def clear_sky_poa_wm2(t_s: float, *, tilt_deg: float) -> float:
    """Clear-sky plane-of-array irradiance (W/m2) on a south-facing panel tilted ``tilt_deg``.

    Direct normal irradiance from Meinel & Meinel (Applied Solar Energy, 1976), as given by
    PVEducation: DNI = 1353 * 0.7 ** (AM ** 0.678) W/m2, with the air mass AM of Kasten & Young
    (Applied Optics 28, 1989); clear-sky diffuse taken as 10 % of DNI, transposed with the
    isotropic sky model, plus ground reflection at albedo 0.2. Peaks near 1000 W/m2 at noon.
    """
    _, north, up = _sun(t_s)
    if up <= 0:
        return 0.0
    zenith_deg = math.degrees(math.acos(min(1.0, up)))
    air_mass = 1 / (up + 0.50572 * (96.07995 - zenith_deg) ** -1.6364)
    dni = 1353 * math.pow(0.7, math.pow(air_mass, 0.678))
    dhi = 0.1 * dni
    ghi = dni * up + dhi
    tilt = math.radians(tilt_deg)
    cos_incidence = up * math.cos(tilt) - north * math.sin(tilt)  # panel normal (0, -sin, cos)
    sky_view = (1 + math.cos(tilt)) / 2
    return dni * max(0.0, cos_incidence) + dhi * sky_view + _ALBEDO * ghi * (1 - sky_view)


def ambient_c(t_s: float) -> float:
    """Hong Kong air temperature (degC): a seasonal cosine fitted to the Hong Kong Observatory's
    1991-2020 monthly means (January 16.3 degC, July 28.8 degC; coldest in late January) plus a
    +-3 degC daily swing peaking at 14:00 local time."""
    seasonal = 22.9 - 6.2 * math.cos(_year_angle(t_s) - 2 * math.pi * 24 / 365)
    local_h = (t_s + UTC_OFFSET_S) % 86_400 / 3600
    return seasonal + 3.0 * math.cos(2 * math.pi * (local_h - 14) / 24)


@dataclass(frozen=True, slots=True, kw_only=True)
class SolarRating:
    """A grid-tied PV string or pool of strings and its inverter.

    - ``rated_power_w``: DC peak power at STC (1000 W/m2, 25 degC cell), in W. A Hong Kong
      rooftop string is 5-10 kWp; a pool is the sum of its strings. The inverter is sized at the
      same AC power, so output clips there.
    - ``tilt_deg``: panel tilt from horizontal, facing south, in degrees. Latitude tilt (22)
      maximises yearly yield; flat-roof racks are often 10-15.
    - ``noct_dc``: nominal operating cell temperature (800 W/m2, 20 degC air, 1 m/s wind), in
      tenths of degC; datasheets give 42-48 degC.
    - ``temp_coeff_ppm_per_c``: power temperature coefficient in ppm per degC above 25 degC
      cell; -4000 ppm is -0.40 %/degC, typical for crystalline silicon (-0.30 to -0.45).
    - ``dc_losses_bp``: soiling, wiring, mismatch and ageing, in basis points of DC power;
      PVWatts' default system loss is 14 %, a clean rooftop 8-12 %.
    - ``inverter_efficiency_bp``: inverter efficiency in basis points; string inverters' CEC or
      European-weighted efficiency is 95-97.5 %.
    """

    rated_power_w: int = 5_000
    tilt_deg: int = 22
    noct_dc: int = 450
    temp_coeff_ppm_per_c: int = -4_000
    dc_losses_bp: int = 1_000
    inverter_efficiency_bp: int = 9_600

    def __post_init__(self) -> None:
        _check_range(self, "rated_power_w", 1, 10**9)
        _check_range(self, "tilt_deg", 0, 90)
        _check_range(self, "noct_dc", 300, 600)
        _check_range(self, "temp_coeff_ppm_per_c", -10_000, 0)
        _check_range(self, "dc_losses_bp", 0, 5_000)
        _check_range(self, "inverter_efficiency_bp", 5_000, 10_000)

    @classmethod
    def from_json(cls, obj: Mapping[str, int]) -> SolarRating:
        return cls(**_check_ints(cls, obj))


class SolarPanel(_Model):
    """A PV string exporting through its inverter.

    Per sample (at least every 5 simulated minutes): irradiance G = k * clear-sky POA
    (:func:`clear_sky_poa_wm2`, ``k`` the cloud process); cell temperature by the NOCT model
    T_cell = T_air + (NOCT - 20) / 800 * G (PVEducation); DC power = rated * G / 1000 *
    (1 + coeff * (T_cell - 25)) * (1 - losses); AC = DC * inverter efficiency, clipped at the
    rating and zero below the inverter's wake-up power. The panel's thermal lag (minutes) is
    ignored. Reports exported energy, average AC power, average irradiance and cell
    temperature over the window.
    """

    __slots__ = ("_cloud", "_weather", "rating")
    kind: ClassVar[DeviceKind] = DeviceKind.SOLAR

    def __init__(self, *, seed: int, rating: SolarRating | None = None) -> None:
        super().__init__(seed=seed)
        self.rating = SolarRating() if rating is None else rating
        self._weather = 0.0
        self._cloud = 0.0

    def rating_json(self) -> dict[str, int]:
        return asdict(self.rating)

    def _advance_clouds(self, rng: random.Random, dt_s: float, t_s: float) -> float:
        self._weather = _ou(rng, self._weather, 0.0, _WEATHER_SD, _WEATHER_TAU_S, dt_s)
        self._cloud = _ou(rng, self._cloud, 0.0, _CLOUD_SD, _CLOUD_TAU_S, dt_s)
        x = _CLOUD_MEAN + _CLOUD_SEASONAL * math.cos(_year_angle(t_s) - _CLOUD_BRIGHTEST) + self._weather + self._cloud
        return 0.08 + 0.92 / (1 + math.exp(-x))

    def step(self, *, start_ms: int, window_s: int) -> dict[str, int]:
        rng, gap_s = self._begin(start_ms, window_s)
        r = self.rating
        rated = float(r.rated_power_w)
        dc_factor = (1 - r.dc_losses_bp / 10_000) * r.inverter_efficiency_bp / 10_000
        heating = (r.noct_dc / 10 - 20) / 800
        n = -(-window_s // _SOLAR_SUBSTEP_S)
        dt = window_s / n
        energy_wh = irradiance_sum = temp_sum = 0.0
        advance = gap_s + dt
        for i in range(n):
            t_s = start_ms / 1000 + (i + 0.5) * dt
            k = self._advance_clouds(rng, advance, t_s)
            advance = dt
            g = k * clear_sky_poa_wm2(t_s, tilt_deg=r.tilt_deg)
            t_cell = ambient_c(t_s) + heating * g
            derate = 1 + r.temp_coeff_ppm_per_c / 1e6 * (t_cell - 25)
            ac_w = min(rated, rated * g / 1000 * derate * dc_factor)
            if ac_w < _INVERTER_WAKE * rated:
                ac_w = 0.0
            energy_wh += ac_w * dt / 3600
            irradiance_sum += g * dt
            temp_sum += t_cell * dt
        return {
            "energy_wh": self._report_wh(energy_wh),
            "power_w": round(energy_wh * 3600 / window_s),
            "irradiance_wm2": round(irradiance_sum / window_s),
            "temp_dc": round(temp_sum / window_s * 10),
        }

    def state_json(self) -> JsonState:
        return {**self._base_state(), "weather": self._weather, "cloud": self._cloud}

    def restore(self, state: Mapping[str, int | float]) -> None:
        self._restore_base(state, self.state_json())
        self._weather = float(state["weather"])
        self._cloud = float(state["cloud"])


# --- EV charging pile -----------------------------------------------------------------------

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
        _check_range(self, "rated_power_w", 1_000, 1_000_000)
        _check_range(self, "efficiency_bp", 5_000, 10_000)
        _check_range(self, "sessions_per_day", 0, 1_000)

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
        checked = _check_ints(cls, obj)
        return replace(cls.for_power_w(checked.get("rated_power_w", _DEFAULT_CHARGER_W)), **checked)


class ChargingPile(_Model):
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
        return self.rating.sessions_per_day * _HOURLY_PROFILE[_local_hour(t_s)] / _PROFILE_SUM / 3600

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


# --- mining rig -----------------------------------------------------------------------------

_HASHRATE_SD: Final = 0.007  # per-minute spread of the reported hashrate around nominal
_HASHRATE_LIMIT: Final = 0.02  # chips are binned, so the rate stays within +-2 % of nominal
_OUTAGES_PER_DAY: Final = 0.5  # reboots, pool reconnects, board resets: about 99.7 % uptime
_OUTAGE_MS: Final = (120_000, 900_000)
_IDLE_TEMP_C: Final = 30.0  # coolant returning from a dry cooler in Hong Kong's climate
_TEMP_SD_C: Final = 0.8
_TEMP_TAU_S: Final = 300.0  # water loop and hashboards settle within minutes


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerRating:
    """A hydro-cooled ASIC bitcoin miner.

    - ``rated_hashrate_ghs``: nominal hashrate in GH/s; 288 TH/s = 288,000 GH/s is the
      hydro-cooled class named in the design (Bitmain's Antminer S21 Hyd: 335 TH/s).
    - ``rated_power_w``: wall power while hashing at the nominal rate, in W; the hashrate times
      the efficiency. Current hydro models run about 16-18 J/TH (S21 Hyd: 16 J/TH; the older
      S19 XP Hyd: 20.8 J/TH); 5,040 W is 17.5 J/TH at 288 TH/s.
    - ``idle_power_w``: draw of the control board and network while not hashing (curtailed or
      rebooting), in W; about 50 W.
    - ``setpoint_dc``: hashboard/outlet coolant temperature the rig regulates to while hashing,
      in tenths of degC; hydro miners run outlet water at 45-55 degC.
    """

    rated_hashrate_ghs: int = 288_000
    rated_power_w: int = 5_040
    idle_power_w: int = 50
    setpoint_dc: int = 480

    def __post_init__(self) -> None:
        _check_range(self, "rated_hashrate_ghs", 1, 10**12)
        _check_range(self, "rated_power_w", 1, 10**9)
        _check_range(self, "idle_power_w", 0, self.rated_power_w)
        _check_range(self, "setpoint_dc", 200, 800)

    @property
    def efficiency_j_per_th(self) -> float:
        return self.rated_power_w / (self.rated_hashrate_ghs / 1000)

    @classmethod
    def for_efficiency(cls, *, rated_hashrate_ghs: int, j_per_th: float) -> MinerRating:
        return cls(rated_hashrate_ghs=rated_hashrate_ghs, rated_power_w=round(rated_hashrate_ghs / 1000 * j_per_th))

    @classmethod
    def from_json(cls, obj: Mapping[str, int]) -> MinerRating:
        return cls(**_check_ints(cls, obj))


def should_curtail(rating: MinerRating, tariff: Tariff) -> bool:
    """Whether an hour spent hashing at the nominal rate earns less than an hour idle costs
    under ``tariff``, computed with protocol.cashflow's own integer formula on hypothetical
    hour-long readings, so the decision matches the cash flow the attestor will publish.
    Comparing with idling rather than with zero is the marginal decision; the two differ only
    by the idle draw, about 1 % of the running cost."""

    def hour(*, hashing: bool) -> int:
        seconds = 3600 if hashing else 0
        power = rating.rated_power_w if hashing else rating.idle_power_w
        body = Body(
            device="curtailment-probe",
            seq=1,
            ts_ms=0,
            kind=DeviceKind.MINER,
            window_s=3600,
            metrics={
                "hashes_gh": rating.rated_hashrate_ghs * seconds,
                "hashrate_ghs": rating.rated_hashrate_ghs if hashing else 0,
                "power_w": power,
                "energy_wh": power,
                "uptime_s": seconds,
                "curtailed_s": 3600 - seconds,
                "temp_dc": rating.setpoint_dc,
            },
            prev=GENESIS_PREV,
        )
        return reading_cash_flow(body, tariff).net

    return hour(hashing=True) < hour(hashing=False)


class MiningRig(_Model):
    """A mining rig that hashes, has rare short outages and curtails when hashing loses money.

    Hashing: hashrate = nominal * (1 + e), e ~ N(0, 0.7 %) clipped to +-2 % (a new draw per
    window, narrower for windows over a minute since the rate averages out); power scales with
    the hashrate. Outages arrive as a Poisson process (0.5 a day) and last 2-15 minutes, during
    which the rig draws its idle power. Curtailment (:func:`should_curtail`) is decided per
    tariff: a curtailed rig hashes nothing, draws idle power and reports the window as
    ``curtailed_s``. The temperature relaxes towards the setpoint in proportion to the time
    spent hashing (towards the coolant return temperature otherwise), with mean-reverting
    noise, and is reported at the window's end.

    ``hashrate_ghs`` is the average rate over the seconds spent hashing and ``hashes_gh`` is
    exactly ``hashrate_ghs * uptime_s``.
    """

    __slots__ = ("_curtail", "_outage_until_ms", "_temp_c", "rating")
    kind: ClassVar[DeviceKind] = DeviceKind.MINER

    def __init__(self, *, seed: int, rating: MinerRating | None = None, tariff: Tariff | None = None) -> None:
        super().__init__(seed=seed)
        self.rating = MinerRating() if rating is None else rating
        self._temp_c = self.rating.setpoint_dc / 10
        self._outage_until_ms = -1
        self._curtail = False
        self.set_tariff(tariff)

    @property
    def curtailed(self) -> bool:
        return self._curtail

    def set_tariff(self, tariff: Tariff | None) -> None:
        """Prices changed: decide again whether to hash (None: always hash)."""
        self._curtail = tariff is not None and should_curtail(self.rating, tariff)

    def rating_json(self) -> dict[str, int]:
        return asdict(self.rating)

    def _downtime_ms(self, rng: random.Random, start_ms: int, end_ms: int) -> int:
        down = 0
        t = start_ms
        if self._outage_until_ms > t:
            resume = min(end_ms, self._outage_until_ms)
            down += resume - t
            t = resume
        rate_per_ms = _OUTAGES_PER_DAY / 86_400_000
        while t < end_ms:
            t += math.ceil(rng.expovariate(rate_per_ms))
            if t >= end_ms:
                break
            self._outage_until_ms = t + rng.randint(*_OUTAGE_MS)
            resume = min(end_ms, self._outage_until_ms)
            down += resume - t
            t = resume
        return down

    def step(self, *, start_ms: int, window_s: int) -> dict[str, int]:
        rng, gap_s = self._begin(start_ms, window_s)
        r = self.rating
        window_ms = window_s * 1000
        if self._curtail:
            uptime_s, hashrate, hashing_ms, hashing_w = 0, 0, 0, 0.0
        else:
            hashing_ms = window_ms - self._downtime_ms(rng, start_ms, start_ms + window_ms)
            uptime_s = (hashing_ms + 500) // 1000
            sd = _HASHRATE_SD * min(1.0, math.sqrt(60 / window_s))
            factor = 1 + max(-_HASHRATE_LIMIT, min(_HASHRATE_LIMIT, rng.gauss(0.0, sd)))
            hashrate = round(r.rated_hashrate_ghs * factor) if uptime_s else 0
            hashing_w = r.rated_power_w * factor
        energy_wh = (hashing_w * hashing_ms + r.idle_power_w * (window_ms - hashing_ms)) / 3_600_000
        hashing_share = hashing_ms / window_ms
        target = _IDLE_TEMP_C + (r.setpoint_dc / 10 - _IDLE_TEMP_C) * hashing_share
        self._temp_c = _ou(rng, self._temp_c, target, _TEMP_SD_C, _TEMP_TAU_S, gap_s + window_s)
        return {
            "hashes_gh": hashrate * uptime_s,
            "hashrate_ghs": hashrate,
            "power_w": round(energy_wh * 3600 / window_s),
            "energy_wh": self._report_wh(energy_wh),
            "uptime_s": uptime_s,
            "curtailed_s": window_s if self._curtail else 0,
            "temp_dc": round(self._temp_c * 10),
        }

    def state_json(self) -> JsonState:
        return {**self._base_state(), "temp_c": self._temp_c, "outage_until_ms": self._outage_until_ms}

    def restore(self, state: Mapping[str, int | float]) -> None:
        self._restore_base(state, self.state_json())
        if type(state["outage_until_ms"]) is not int:
            raise ValueError(f"state outage_until_ms must be an int, got {state['outage_until_ms']!r}")
        self._temp_c = float(state["temp_c"])
        self._outage_until_ms = int(state["outage_until_ms"])


# --- factory ---------------------------------------------------------------

_R = TypeVar("_R", SolarRating, ChargerRating, MinerRating)


def _rating(cls: type[_R], rating: Mapping[str, int] | None) -> _R:
    return cls() if rating is None else cls.from_json(rating)


def build_model(
    kind: DeviceKind, *, seed: int, rating: Mapping[str, int] | None = None, tariff: Tariff | None = None
) -> DeviceModel:
    """A model of ``kind`` from its stored integer rating (:meth:`rating_json`; None for the
    defaults). ``tariff`` drives a miner's curtailment and is ignored by the other kinds,
    which have no decision to make."""
    kind = DeviceKind(kind)
    if kind is DeviceKind.SOLAR:
        return SolarPanel(seed=seed, rating=_rating(SolarRating, rating))
    if kind is DeviceKind.CHARGER:
        return ChargingPile(seed=seed, rating=_rating(ChargerRating, rating))
    return MiningRig(seed=seed, rating=_rating(MinerRating, rating), tariff=tariff)
