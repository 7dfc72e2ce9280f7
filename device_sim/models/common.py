"""What the device models share: the site, the window bookkeeping and random processes,
rating checks, and the protocol the fleet runner drives models through."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import fields
from typing import ClassVar, Final, Protocol

from protocol.envelope import DeviceKind

LATITUDE_DEG: Final = 22.3
LONGITUDE_DEG: Final = 114.17
UTC_OFFSET_S: Final = 8 * 3600

MAX_WINDOW_S: Final = 86_400  # protocol.envelope.Body admits windows of at most a day

JsonState = dict[str, int | float]


def local_hour(t_s: float) -> int:
    return int((t_s + UTC_OFFSET_S) % 86_400 // 3600)


def year_angle(t_s: float) -> float:
    """Fractional-year angle (radians, about 0 at 1 January 00:00 UTC), the argument of
    Spencer's series; counting tropical years keeps the seasons in phase over decades."""
    days = (t_s - 946_684_800) / 86_400  # since 2000-01-01T00:00Z
    return 2 * math.pi * (days % 365.2422) / 365.2422


def ou_step(rng: random.Random, value: float, mean: float, sd: float, tau_s: float, dt_s: float) -> float:
    """Exact Ornstein-Uhlenbeck (continuous AR(1)) update over ``dt_s`` seconds: mean-reverting
    with time constant ``tau_s`` and stationary standard deviation ``sd``. Exact for any step,
    so a 1 s window and a 1 day window see the same process."""
    decay = math.exp(-dt_s / tau_s)
    return mean + (value - mean) * decay + sd * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)


def check_ints(cls: type, obj: Mapping[str, int]) -> dict[str, int]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown rating fields {unknown}")
    for name, value in obj.items():
        if type(value) is not int:
            raise ValueError(f"{cls.__name__}.{name} must be an int, got {value!r}")
    return dict(obj)


def check_range(owner: object, name: str, low: int, high: int) -> None:
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


class WindowedModel:
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
        if type(window_s) is not int or not 1 <= window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be an int in 1..{MAX_WINDOW_S}, got {window_s!r}")
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
