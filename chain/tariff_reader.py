"""Reading the TariffRegistry: every tariff the pricing authority published, parsed and checked."""

from __future__ import annotations

import hashlib
from typing import Any

from chain._args import as_bytes
from chain._contracts import LOG_CHUNK, ContractAccess
from chain.errors import InvalidTariffError
from chain.reverts import edge
from chain.types import PublishedTariff
from protocol.cashflow import Tariff, tariff_bytes
from protocol.envelope import parse_json
from protocol.errors import VerificationError

__all__ = ["TariffReader", "parse_published_tariff"]


def parse_published_tariff(raw: bytes) -> tuple[Tariff | None, str | None]:
    """The tariff that ``raw`` (the bytes of a ``TariffPublished`` event) encodes, or None and
    why not: bytes that are not the canonical JSON of a valid tariff are refused, so that one
    tariff has one hash and an epoch's metadata can name it exactly."""
    try:
        tariff = Tariff.from_json(parse_json(raw, what="tariff"))
    except (VerificationError, TypeError) as exc:
        return None, f"not a tariff: {exc}"
    if tariff_bytes(tariff) != raw:
        return None, "not the canonical (RFC 8785) encoding of the tariff it holds"
    return tariff, None


class TariffReader(ContractAccess):
    """The tariffs on chain: what an auditor prices every epoch with."""

    def tariff_count(self) -> int:
        return int(self._call("TariffRegistry", "count"))

    def published_tariffs(self, *, from_block: int | None = None, to_block: int | None = None) -> list[PublishedTariff]:
        """Every ``TariffPublished`` event in ``from_block..to_block`` (inclusive; defaults: the
        registry's deployment block and the latest block), in publication order. Each event's
        hash is checked against the bytes it carries (:class:`InvalidTariffError` when they
        differ: the node's logs are not the chain's); bytes that are not a canonical tariff are
        kept with their ``problem`` (see :class:`PublishedTariff`)."""
        first = self.deployment.tariff_registry.block if from_block is None else from_block
        logs = self._logs("TariffRegistry", "TariffPublished", from_block=first, to_block=to_block)
        times = self._timestamps(log["blockNumber"] for log in logs)
        found = [self._published(log, times[int(log["blockNumber"])]) for log in logs]
        found.sort(key=lambda t: t.index)
        return found

    def tariff_at(self, index: int) -> PublishedTariff:
        """Tariff ``index`` (0 is the first published), its event checked against the hash and
        effective time the contract keeps; ``ContractRevert('TariffIndexOutOfRange')``."""
        tariff_hash, effective_from = self._call("TariffRegistry", "tariffAt", index)
        return self._checked(index, as_bytes(tariff_hash), int(effective_from))

    def tariff_in_force(self, time_s: int) -> PublishedTariff | None:
        """The tariff in force at block time ``time_s`` (the last whose effective time is at or
        before it), or None before the first: the contract's ``tariffInForce``, with the tariff
        itself from its event (checked against the hash the contract keeps)."""
        found, index, tariff_hash, effective_from = self._call("TariffRegistry", "tariffInForce", time_s)
        if not found:
            return None
        return self._checked(int(index), as_bytes(tariff_hash), int(effective_from))

    def _checked(self, index: int, tariff_hash: bytes, effective_from: int) -> PublishedTariff:
        # A published tariff never changes (the contract appends only), so the event found for
        # this (index, hash, time) once is the event: an auditor checking thousands of bundles
        # reads it once, not once per bundle.
        key = (index, tariff_hash, effective_from)
        if key in self._tariff_events:
            return self._tariff_events[key]
        logs = self._logs_of_index(index)
        for log in logs:
            candidate = self._published(log, self.block_timestamp(int(log["blockNumber"])))
            if candidate.tariff_hash == tariff_hash and candidate.effective_from == effective_from:
                self._tariff_events[key] = candidate
                return candidate
        raise InvalidTariffError(
            f"no TariffPublished event of tariff {index} matches the hash the contract keeps for it:"
            " the node's logs are not the chain's"
        )

    def _logs_of_index(self, index: int) -> list[Any]:
        handle = self._contract("TariffRegistry").events.TariffPublished
        last = self.block_number()
        found: list[Any] = []
        for start in range(self.deployment.tariff_registry.block, last + 1, LOG_CHUNK):
            end = min(last, start + LOG_CHUNK - 1)
            with edge():
                found.extend(handle.get_logs(from_block=start, to_block=end, argument_filters={"index": index}))
            if found:
                break
        return found

    @staticmethod
    def _published(log: Any, timestamp: int) -> PublishedTariff:
        args = log["args"]
        raw = as_bytes(args["tariff"])
        tariff_hash = as_bytes(args["tariffHash"])
        if hashlib.sha256(raw).digest() != tariff_hash:
            raise InvalidTariffError(
                f"the TariffPublished event of tariff {args['index']} carries bytes whose SHA-256 is not its"
                " hash: the node's logs are not the chain's"
            )
        parsed, problem = parse_published_tariff(raw)
        return PublishedTariff(
            index=int(args["index"]),
            tariff_hash=tariff_hash,
            effective_from=int(args["effectiveFrom"]),
            raw=raw,
            parsed=parsed,
            problem=problem,
            block_number=int(log["blockNumber"]),
            timestamp=timestamp,
        )
