"""A rooftop solar string in Hong Kong: sun position, clouds, irradiance and inverter output."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import ClassVar, Final

from device_sim.models.common import (
    LATITUDE_DEG,
    LONGITUDE_DEG,
    UTC_OFFSET_S,
    JsonState,
    WindowedModel,
    check_ints,
    check_range,
    ou_step,
    year_angle,
)
from protocol.envelope import DeviceKind

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
    g = year_angle(t_s)
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
    seasonal = 22.9 - 6.2 * math.cos(year_angle(t_s) - 2 * math.pi * 24 / 365)
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
        check_range(self, "rated_power_w", 1, 10**9)
        check_range(self, "tilt_deg", 0, 90)
        check_range(self, "noct_dc", 300, 600)
        check_range(self, "temp_coeff_ppm_per_c", -10_000, 0)
        check_range(self, "dc_losses_bp", 0, 5_000)
        check_range(self, "inverter_efficiency_bp", 5_000, 10_000)

    @classmethod
    def from_json(cls, obj: Mapping[str, int]) -> SolarRating:
        return cls(**check_ints(cls, obj))


class SolarPanel(WindowedModel):
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
        self._weather = ou_step(rng, self._weather, 0.0, _WEATHER_SD, _WEATHER_TAU_S, dt_s)
        self._cloud = ou_step(rng, self._cloud, 0.0, _CLOUD_SD, _CLOUD_TAU_S, dt_s)
        x = _CLOUD_MEAN + _CLOUD_SEASONAL * math.cos(year_angle(t_s) - _CLOUD_BRIGHTEST) + self._weather + self._cloud
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
