"""What an audit found, for machines (``to_json``) and for people (:meth:`AuditReport.render`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from auditor.chains import DeviceChain
from auditor.distributions import DistributionCheck
from chain.types import Checkpoint as ChainCheckpoint

__all__ = ["AuditReport", "ChainEvent", "EpochResult", "Finding", "Rejection"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    check: str
    message: str
    epoch: int | None = None
    device: str | None = None
    seq: int | None = None
    leaf_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "epoch": self.epoch,
            "device": self.device,
            "seq": self.seq,
            "leaf_index": self.leaf_index,
            "message": self.message,
        }


@dataclass(slots=True)
class EpochResult:
    epoch: int
    tree_size: int
    leaves: int
    root: str
    recomputed_root: str | None
    block_number: int
    assets: dict[str, dict[str, int]]
    findings: int = 0
    tariff: str | None = None
    """The metadata's tariff, when it is the one published on chain for the window's start."""

    @classmethod
    def begin(cls, anchored: ChainCheckpoint) -> EpochResult:
        """The epoch's line in the report, before its leaves are read."""
        return cls(
            epoch=anchored.epoch,
            tree_size=anchored.tree_size,
            leaves=0,
            root=anchored.root.hex(),
            recomputed_root=None,
            block_number=anchored.block_number,
            assets={},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "tree_size": self.tree_size,
            "leaves": self.leaves,
            "root": self.root,
            "recomputed_root": self.recomputed_root,
            "block_number": self.block_number,
            "assets": self.assets,
            "findings": self.findings,
            "tariff": self.tariff,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A chained rejection: a genuine link of its device's chain, quarantined for its content.
    Information, not a finding: it advanced the chain and stays out of cash flow."""

    epoch: int
    device: str
    seq: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "device": self.device, "seq": self.seq, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEvent:
    """Something the registrar or the pricing authority did on chain in the window: information
    for the auditor, not a finding."""

    kind: str
    """``registered``, ``rotated``, ``revoked`` or ``tariff``."""
    subject: str
    """The device (its id when the export showed it, else its id's hash), or the tariff."""
    detail: str
    block_number: int
    timestamp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "block_number": self.block_number,
            "timestamp": self.timestamp,
        }


@dataclass(slots=True)
class AuditReport:
    first: int
    last: int
    source: str
    epochs: list[EpochResult] = field(default_factory=list)
    devices: dict[str, DeviceChain] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    events: list[ChainEvent] = field(default_factory=list)
    """Registrations, rotations and revocations on chain in the window."""
    tariffs: list[ChainEvent] = field(default_factory=list)
    """Tariffs the pricing authority published in the window."""
    distributions: list[DistributionCheck] = field(default_factory=list)
    """Cash-flow token distributions funded for epochs of the window, each against its cap."""
    quarantined: int = 0
    leaves: int = 0
    signatures_checked: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "epochs_audited": f"{self.first}..{self.last}",
            "source": self.source,
            "leaves": self.leaves,
            "signatures_checked": self.signatures_checked,
            "seconds": round(self.seconds, 3),
            "quarantined": self.quarantined,
            "summary": {"by_check": self.by_check(), "by_device": self.by_device()},
            "findings": [f.to_json() for f in self.findings],
            "rejections": [r.to_json() for r in self.rejections],
            "registry_events": [e.to_json() for e in self.events],
            "tariff_changes": [t.to_json() for t in self.tariffs],
            "epochs": [e.to_json() for e in self.epochs],
            "distributions": [d.to_json() for d in self.distributions],
            "devices": {name: chain.to_json() for name, chain in sorted(self.devices.items())},
        }

    def by_check(self) -> dict[str, int]:
        """How many findings of each check, most first."""
        counts = Counter(f.check for f in self.findings)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def by_device(self) -> dict[str, dict[str, int]]:
        """Per device, how many findings of each check (findings that name no device left out)."""
        grouped: dict[str, Counter[str]] = {}
        for f in self.findings:
            if f.device is not None:
                grouped.setdefault(f.device, Counter())[f.check] += 1
        return {device: dict(sorted(c.items())) for device, c in sorted(grouped.items())}

    def render(self, *, examples: int | None = 5) -> str:
        """The report for people: the verdict and a summary first (counts, findings per check and
        per device), then the findings grouped by device and check, each group with its count,
        its first ``examples`` seq numbers and one message (None: every finding). One bad run
        can have tens of thousands of findings; nobody reads them one per line."""
        lines = _summary(self, examples)
        lines += _completeness(self)
        lines += _rejections(self, examples)
        lines += _chain_events(self)
        lines += _distributions(self)
        lines.append("")
        lines += _epochs(self)
        lines += _findings(self, examples)
        return "\n".join(lines)


def _summary(report: AuditReport, examples: int | None) -> list[str]:
    """The verdict, the counts, and the findings by check and by device."""
    r = report
    lines = [
        f"audit of epochs {r.first}..{r.last} from {r.source}: {'PASSED' if r.ok else 'FAILED'}",
        f"{len(r.epochs)} epochs, {r.leaves} leaves, {r.quarantined} quarantined,"
        f" {r.signatures_checked} signatures re-verified, {len(r.devices)} devices, {r.seconds:.1f} s",
    ]
    if not r.findings:
        return lines
    lines.append(
        f"{len(r.findings)} finding(s): " + ", ".join(f"{check} {count}" for check, count in r.by_check().items())
    )
    by_device = r.by_device()
    if by_device:
        lines.append(f"by device ({len(by_device)}):")
        ordered = sorted(by_device.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        shown = ordered if examples is None else ordered[: examples * 2]
        for device, checks in shown:
            lines.append(f"  {device:<24} " + ", ".join(f"{c} {n}" for c, n in checks.items()))
        if len(shown) < len(by_device):
            lines.append(f"  ... and {len(by_device) - len(shown)} more device(s)")
    return lines


def _completeness(report: AuditReport) -> list[str]:
    """How many devices lost nothing, and the seq ranges each of the others lost."""
    lost = {d: c for d, c in report.devices.items() if c.lost}
    total_lost = sum(c.lost for c in lost.values())
    lines = [
        f"completeness: {len(report.devices) - len(lost)} of {len(report.devices)} devices lost nothing;"
        f" {total_lost} reading(s) missing in all"
    ]
    for device, c in sorted(lost.items()):
        ranges = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in c.gaps)
        lines.append(f"  {device:<24} lost {c.lost}: seq {ranges}")
    return lines


def _rejections(report: AuditReport, examples: int | None) -> list[str]:
    if not report.rejections:
        return []
    lines = [
        f"chained rejections: {len(report.rejections)} (genuine links of their device's chain,"
        " quarantined for content, not in cash flow; information, not findings)"
    ]
    shown = report.rejections if examples is None else report.rejections[: examples * 2]
    lines.extend(f"  epoch {r.epoch:>4}  {r.device}#{r.seq}  {r.reason}" for r in shown)
    if len(shown) < len(report.rejections):
        lines.append(f"  ... and {len(report.rejections) - len(shown)} more (--all or --json for every one)")
    return lines


def _chain_events(report: AuditReport) -> list[str]:
    """What the registrar and the pricing authority did on chain in the window."""
    lines = []
    for title, events in (("device registry", report.events), ("tariffs published", report.tariffs)):
        counts = Counter(e.kind for e in events)
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) if events else "none"
        lines.append(f"{title} in the window: {summary}")
        lines.extend(f"  block {e.block_number:>7}  {e.kind:<10} {e.subject}: {e.detail}" for e in events)
    return lines


def _distributions(report: AuditReport) -> list[str]:
    """Each funded epoch of each token: net, recomputed cap, funded, and any excess."""
    if not report.distributions:
        return []
    lines = [f"distributions funded in the window ({len(report.distributions)}), each against its cap:"]
    for d in report.distributions:
        verdict = f"EXCESS {d.excess}" if d.excess else "within cap"
        lines.append(f"  {d.asset} epoch {d.epoch}: net {d.net}, cap {d.cap}, funded {d.funded}: {verdict}")
    return lines


def _epochs(report: AuditReport) -> list[str]:
    """One line per epoch, then one per asset with its recomputed totals."""
    lines = []
    for e in report.epochs:
        status = "ok" if e.findings == 0 else f"{e.findings} finding(s)"
        lines.append(
            f"epoch {e.epoch:>4}  size {e.tree_size:>9}  leaves {e.leaves:>7}  block {e.block_number:>7}  {status}"
            + (f"  tariff {e.tariff}" if e.tariff else "")
        )
        for asset, totals in e.assets.items():
            lines.append(
                f"      {asset:<24} readings {totals['readings']:>7}  energy {totals['energy_wh']:>12} Wh"
                f"  revenue {totals['revenue']:>12}  cost {totals['cost']:>12}  net {totals['net']:>12}"
            )
    return lines


def _findings(report: AuditReport, examples: int | None) -> list[str]:
    """The findings grouped by device, then by check (most frequent first): per group a count, the
    first ``examples`` seq numbers and one message (None: every finding, one per line). Findings
    that name no device (an epoch's root, its metadata) follow, grouped by check alone."""
    by_device: dict[str, dict[str, list[Finding]]] = {}
    no_device: dict[str, list[Finding]] = {}
    for f in report.findings:
        if f.device is None:
            no_device.setdefault(f.check, []).append(f)
        else:
            by_device.setdefault(f.device, {}).setdefault(f.check, []).append(f)
    lines: list[str] = []
    if by_device:
        lines += ["", f"findings by device and check ({len(by_device)} device(s)):"]
        ordered = sorted(by_device.items(), key=lambda kv: (-sum(map(len, kv[1].values())), kv[0]))
        for device, checks in ordered:
            lines.append(f"  {device}")
            for check, found in sorted(checks.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                lines += _group(check, found, examples, indent="    ")
    if no_device:
        lines += ["", "findings that name no device:"]
        for check, found in sorted(no_device.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines += _group(check, found, examples, indent="  ")
    return lines


def _group(check: str, found: list[Finding], examples: int | None, *, indent: str) -> list[str]:
    """One check's findings in one group: ``check N: seq a, b, c (first 3 of N)`` and a message."""
    if examples is None:
        return [f"{indent}{check} {len(found)}:"] + [f"{indent}  {_where(f)}{f.message}" for f in found]
    seqs = [f.seq for f in found if f.seq is not None]
    head = f"{indent}{check} {len(found)}"
    if seqs:
        shown = ", ".join(str(s) for s in seqs[:examples])
        more = f" (first {examples} of {len(seqs)})" if len(seqs) > examples else ""
        head += f": seq {shown}{more}"
    else:
        epochs = sorted({f.epoch for f in found if f.epoch is not None})
        if epochs:
            head += ": epoch " + ", ".join(str(e) for e in epochs[:examples])
            head += f" (first {examples} of {len(epochs)})" if len(epochs) > examples else ""
    lines = [head, f"{indent}  e.g. {_where(found[0])}{found[0].message}"]
    if len(found) > 1:
        lines.append(f"{indent}  (--all or --json lists all {len(found)})")
    return lines


def _where(f: Finding) -> str:
    where = " ".join(
        part
        for part in (
            f"epoch {f.epoch}" if f.epoch is not None else "",
            f"{f.device}#{f.seq}" if f.device is not None and f.seq is not None else (f.device or ""),
            f"leaf {f.leaf_index}" if f.leaf_index is not None else "",
        )
        if part
    )
    return where + ": " if where else ""
