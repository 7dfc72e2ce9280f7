"""Cash flow from physical readings: pure integer arithmetic over a versioned tariff.

Devices report physical quantities only; money is computed here, from the tariff committed in
each epoch's metadata, so an auditor recomputes every figure from the leaves and the metadata.
All amounts are integers in minor units of the tariff's currency (cents for HKD).

Per reading (``//`` is floor division, applied once per reading, so totals over any grouping of
readings are plain sums and hour buckets add up to days and epochs exactly):

- solar:   revenue = energy_wh * solar_fit_per_kwh // 1000; cost = 0
- charger: revenue = energy_wh * charger_price_per_kwh // 1000 + sessions_started * charger_session_fee;
           cost = grid_wh * grid_price_per_kwh // 1000
- miner:   revenue = hashes * (btc_subsidy_sats + btc_fees_sats) * (10000 - pool_fee_bps) * btc_price
                     // (btc_difficulty * 2**32 * 10000 * 10**8),  with hashes = hashes_gh * 10**9
           (expected bitcoin for the work done, less the pool fee, valued at the bitcoin price);
           cost = energy_wh * miner_power_price_per_kwh // 1000
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from typing import Any, Final

from protocol.envelope import MAX_INT, Body, DeviceKind, canonical_json
from protocol.errors import MetadataError

__all__ = ["HOUR_MS", "CashFlow", "Tariff", "reading_cash_flow", "tariff_bytes", "tariff_hash"]

HOUR_MS: Final = 3_600_000
"""Cash flow is summed, priced and judged for coverage on a grid of whole UTC hours."""

_TARIFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """Prices and network inputs for one period, all integers. Money fields are minor units of
    ``currency`` (per kWh where named so, per bitcoin for ``btc_price``)."""

    id: str
    currency: str
    solar_fit_per_kwh: int
    charger_price_per_kwh: int
    charger_session_fee: int
    grid_price_per_kwh: int
    miner_power_price_per_kwh: int
    btc_price: int
    btc_difficulty: int
    btc_subsidy_sats: int
    btc_fees_sats: int
    pool_fee_bps: int

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _TARIFF_ID.fullmatch(self.id):
            raise MetadataError(f"tariff id {self.id!r} must match {_TARIFF_ID.pattern}")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise MetadataError(f"tariff currency {self.currency!r} must be an ISO 4217 code")
        for name in _TARIFF_INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_INT:
                raise MetadataError(f"tariff {name} must be an integer in 0..2**53-1, got {value!r}")
        if self.btc_difficulty == 0:
            raise MetadataError("tariff btc_difficulty must be positive")
        if self.pool_fee_bps > 10_000:
            raise MetadataError("tariff pool_fee_bps must be at most 10000")

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TARIFF_FIELDS}

    @classmethod
    def from_json(cls, obj: object) -> Tariff:
        if not isinstance(obj, dict):
            raise MetadataError("tariff must be a JSON object")
        expected = _TARIFF_FIELD_SET
        if obj.keys() != expected:
            raise MetadataError(
                f"tariff fields differ: missing {sorted(expected - obj.keys())},"
                f" unknown {sorted(obj.keys() - expected)}"
            )
        return cls(**obj)


# Every bundle an auditor checks parses a tariff: ``dataclasses.fields`` per call was a tenth of it.
_TARIFF_FIELDS: Final = tuple(f.name for f in fields(Tariff))
_TARIFF_FIELD_SET: Final = frozenset(_TARIFF_FIELDS)
_TARIFF_INT_FIELDS: Final = tuple(name for name in _TARIFF_FIELDS if name not in ("id", "currency"))


def tariff_bytes(tariff: Tariff) -> bytes:
    """The canonical bytes of a tariff (RFC 8785 of :meth:`Tariff.to_json`): what the pricing
    authority publishes on chain, and what :func:`tariff_hash` hashes."""
    return canonical_json(tariff.to_json())


def tariff_hash(tariff: Tariff) -> bytes:
    """SHA-256 of :func:`tariff_bytes`: the hash the TariffRegistry keeps for a published tariff."""
    return hashlib.sha256(tariff_bytes(tariff)).digest()


@dataclass(frozen=True, slots=True)
class CashFlow:
    revenue: int
    cost: int

    @property
    def net(self) -> int:
        return self.revenue - self.cost


_MINER_DENOMINATOR_FIXED: Final = 2**32 * 10_000 * 10**8


def reading_cash_flow(body: Body, tariff: Tariff) -> CashFlow:
    """The revenue and cost one reading contributes (formulas in the module docstring)."""
    m = body.metrics
    if body.kind is DeviceKind.SOLAR:
        return CashFlow(m["energy_wh"] * tariff.solar_fit_per_kwh // 1000, 0)
    if body.kind is DeviceKind.CHARGER:
        revenue = (
            m["energy_wh"] * tariff.charger_price_per_kwh // 1000 + m["sessions_started"] * tariff.charger_session_fee
        )
        return CashFlow(revenue, m["grid_wh"] * tariff.grid_price_per_kwh // 1000)
    hashes = m["hashes_gh"] * 10**9
    numerator = (
        hashes * (tariff.btc_subsidy_sats + tariff.btc_fees_sats) * (10_000 - tariff.pool_fee_bps) * tariff.btc_price
    )
    revenue = numerator // (tariff.btc_difficulty * _MINER_DENOMINATOR_FIXED)
    return CashFlow(revenue, m["energy_wh"] * tariff.miner_power_price_per_kwh // 1000)


def energy_wh(body: Body) -> int:
    """The energy figure shown for a reading: exported (solar), delivered (charger) or drawn
    (miner)."""
    return body.metrics["energy_wh"]
