"""Follow each device's hash chain through every link the export shows: the accepted readings
(log leaves) and the chained rejections (quarantined messages that were signed and linked, and so
advanced the device's chain, although their content was refused).

Links are followed in ``seq`` order, wherever they sit in the export. The outcome per device is a
:class:`DeviceChain` (what the chain proves the device signed, and what of it is missing) and a
list of problems, each a ``(check, message, link)``:

- ``gap``: seqs between two links that neither the log nor the quarantine holds (loss);
- ``fork``: a seq seen twice, or a link whose ``prev`` is not the hash of the link before;
- ``bad_restart``: a ``prev`` of 32 zero bytes (a new chain) where no key rotation on chain
  explains it. A legitimate restart (a resynchronised device) is its new key's first reading;
- ``back_in_time``: an accepted reading dated before the accepted reading before it in the chain
  (a device's clock is evidence, and the chain's order is the device's own);
- ``too_soon``: an accepted reading dated less than the device's registered window after the one
  before it (one window, one reading: two readings inside a window count the same output twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.envelope import GENESIS_PREV
from protocol.timing import BackInTimeError, TooSoonError, check_spacing

__all__ = ["DeviceChain", "Link", "follow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One signed message of a device's chain as the export shows it."""

    seq: int
    prev: bytes
    chain_hash: bytes
    key_index: int | None
    """The registered key that signs it (None when no key does: that is its own finding)."""
    epoch: int
    leaf_index: int | None
    """None for a chained rejection (it is in the quarantine, not the log)."""
    rejected: str | None = None
    """The quarantine reason of a chained rejection; None for an accepted reading."""
    ts_ms: int = 0
    """The reading's own date."""
    window_s: int | None = None
    """The device's registered window (None when the chain has no profile for it)."""

    def where(self, device: str) -> dict[str, Any]:
        return {"epoch": self.epoch, "device": device, "seq": self.seq, "leaf_index": self.leaf_index}


@dataclass(slots=True)
class DeviceChain:
    """One device's hash chain as seen in the window."""

    first_seq: int
    last_seq: int
    last_hash: bytes
    readings: int = 1
    gaps: list[tuple[int, int]] = field(default_factory=list)
    forks: list[int] = field(default_factory=list)
    out_of_window: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """Chained rejections (seq, reason): links of the chain that are not in cash flow."""
    restarts: list[int] = field(default_factory=list)
    """Seqs where a new key legitimately started a new chain (a resynchronisation)."""

    @property
    def lost(self) -> int:
        """Readings the chain proves were signed that neither the log nor the quarantine holds."""
        return sum(b - a + 1 for a, b in self.gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "lost": self.lost,
            "gaps": [list(g) for g in self.gaps],
            "forks": self.forks,
            "out_of_window": self.out_of_window,
            "rejected": [{"seq": seq, "reason": reason} for seq, reason in self.rejected],
            "restarts": self.restarts,
        }


def _restarts(link: Link, before: Link | None) -> bool:
    """Whether ``link`` (prev zero) is a new key's first reading: signed by a key rotated in on
    chain after the key of the link before it (any key but the first when there is none)."""
    if link.key_index is None or link.key_index == 0:
        return False
    return before is None or (before.key_index is not None and before.key_index < link.key_index)


def follow(links: Iterable[Link], *, from_genesis: bool) -> tuple[DeviceChain, list[tuple[str, str, Link]]]:
    """Follow one device's ``links`` (at least one); ``from_genesis`` when the window starts at
    the log's first epoch, so the device's first link must start its chain."""
    # Accepted readings before rejections at the same seq, so a duplicate names the quarantined one.
    ordered = sorted(links, key=lambda lk: (lk.seq, lk.leaf_index is None, lk.epoch))
    problems: list[tuple[str, str, Link]] = []
    first = ordered[0]
    chain = DeviceChain(first.seq, first.seq, first.chain_hash, readings=len(ordered))
    _start(chain, first, from_genesis=from_genesis, problems=problems)
    if first.rejected is not None and all(check == "gap" for check, _, _ in problems):
        chain.rejected.append((first.seq, first.rejected))
    before = first
    accepted = first if first.rejected is None else None
    for link in ordered[1:]:
        found = len(problems)
        if link.seq <= chain.last_seq:
            chain.forks.append(link.seq)
            problems.append(("fork", f"seq {link.seq} again after seq {chain.last_seq}", link))
            continue
        _step(chain, link, before=before, problems=problems)
        if link.rejected is None:
            if accepted is not None:
                _check_time(link, before=accepted, problems=problems)
            accepted = link
        if link.rejected is not None and all(check == "gap" for check, _, _ in problems[found:]):
            chain.rejected.append((link.seq, link.rejected))
        chain.last_seq, chain.last_hash = link.seq, link.chain_hash
        before = link
    return chain, problems


def _start(chain: DeviceChain, first: Link, *, from_genesis: bool, problems: list[tuple[str, str, Link]]) -> None:
    """Check the device's first link in the window: a restart, or (from genesis) seq 1 with no prev."""
    if first.prev == GENESIS_PREV and first.seq > 1:
        if _restarts(first, None):
            chain.restarts.append(first.seq)
        else:
            chain.forks.append(first.seq)
            problems.append(
                ("bad_restart", "prev is zero (a new chain) but no key rotation on chain explains it", first)
            )
    elif from_genesis and first.seq != 1:
        chain.gaps.append((1, first.seq - 1))
        problems.append(("gap", f"the log has no reading 1..{first.seq - 1} of this device", first))
    elif from_genesis and first.prev != GENESIS_PREV:
        chain.forks.append(first.seq)
        problems.append(("fork", "the device's first reading does not start its chain (prev is not zero)", first))


def _step(chain: DeviceChain, link: Link, *, before: Link, problems: list[tuple[str, str, Link]]) -> None:
    """Check a link after the chain's last: a restart, a gap before it, or a prev that does not link."""
    if link.prev == GENESIS_PREV:
        if _restarts(link, before):
            chain.restarts.append(link.seq)
        else:
            chain.forks.append(link.seq)
            problems.append(
                ("bad_restart", "prev is zero (a new chain) but no key rotation on chain explains it", link)
            )
    elif link.seq > chain.last_seq + 1:
        chain.gaps.append((chain.last_seq + 1, link.seq - 1))
        missing = chain.last_seq + 1 if link.seq == chain.last_seq + 2 else f"{chain.last_seq + 1}..{link.seq - 1}"
        problems.append(
            ("gap", f"reading(s) {missing} of this device are neither in the log nor in the quarantine", link)
        )
    elif link.prev != chain.last_hash:
        chain.forks.append(link.seq)
        what = "chained rejection" if link.rejected is not None else "reading"
        problems.append(("fork", f"the {what}'s prev does not link to seq {chain.last_seq}", link))


def _check_time(link: Link, *, before: Link, problems: list[tuple[str, str, Link]]) -> None:
    """An accepted reading keeps the window rules after the accepted one before it
    (:func:`protocol.timing.check_spacing`, the gateway's rule): never back in time, at least
    the registered window later."""
    # Without a profile on chain (its own finding) only the order can be judged.
    window_s = 0 if link.window_s is None else link.window_s
    try:
        check_spacing(previous_ts_ms=before.ts_ms, ts_ms=link.ts_ms, window_s=window_s)
    except BackInTimeError as exc:
        problems.append(("back_in_time", f"{exc} (seq {before.seq}): a device's readings never go back in time", link))
    except TooSoonError as exc:
        problems.append(("too_soon", f"{exc} (seq {before.seq}; one reading per registered window)", link))
