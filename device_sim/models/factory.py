"""A device model of any kind from its stored rating."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from device_sim.models.charger import ChargerRating, ChargingPile
from device_sim.models.common import DeviceModel
from device_sim.models.miner import MinerRating, MiningRig
from device_sim.models.solar import SolarPanel, SolarRating
from protocol.cashflow import Tariff
from protocol.envelope import DeviceKind

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
