"""A hydro-cooled bitcoin mining rig: hashrate, outages, temperature and curtailment."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import ClassVar, Final

from device_sim.models.common import (
    JsonState,
    WindowedModel,
    check_ints,
    check_range,
    ou_step,
)
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, Body, DeviceKind

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
        check_range(self, "rated_hashrate_ghs", 1, 10**12)
        check_range(self, "rated_power_w", 1, 10**9)
        check_range(self, "idle_power_w", 0, self.rated_power_w)
        check_range(self, "setpoint_dc", 200, 800)

    @property
    def efficiency_j_per_th(self) -> float:
        return self.rated_power_w / (self.rated_hashrate_ghs / 1000)

    @classmethod
    def for_efficiency(cls, *, rated_hashrate_ghs: int, j_per_th: float) -> MinerRating:
        return cls(rated_hashrate_ghs=rated_hashrate_ghs, rated_power_w=round(rated_hashrate_ghs / 1000 * j_per_th))

    @classmethod
    def from_json(cls, obj: Mapping[str, int]) -> MinerRating:
        return cls(**check_ints(cls, obj))


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


class MiningRig(WindowedModel):
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
        self._temp_c = ou_step(rng, self._temp_c, target, _TEMP_SD_C, _TEMP_TAU_S, gap_s + window_s)
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
