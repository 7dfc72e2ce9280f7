"""Response and request bodies (the OpenAPI schema is generated from these).

Conventions at the edge: times are integer milliseconds since the Unix epoch (UTC) unless a name
says seconds; byte strings are lowercase hex; Ethereum values (transaction hashes, addresses) are
``0x``-prefixed as usual there; money is integer minor units of the tariff's currency.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

HEX32 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
TX = "0x4e3a3754410177e6937ef1f84bba68ea139e8d1a2258c5f85db9f1cd715a1bdd"
KEY = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- system ------------------------------------------------------------------------------------


class Health(_Model):
    status: Literal["ok"] = Field(description="`ok` when the database answered.")
    database: str = Field(description="The database backend.", examples=["sqlite", "postgresql"])
    log_size: int = Field(description="Leaves in the Merkle log.", examples=[1_000_000])


class ValidationIssue(_Model):
    """One refused parameter or body field of a 422."""

    loc: list[str | int] = Field(description="Where: the source (query, path, body, ...) then the name or path.")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="pydantic's error type.", examples=["less_than_equal"])


class Problem(_Model):
    """What every error looks like (every 4xx and 5xx the API answers)."""

    detail: str = Field(description="What went wrong, as a sentence.", examples=["device 'sol-9999' not found"])
    reason: str | None = Field(
        default=None,
        description="A word a client may branch on: not_found, pending, invalid_parameter, unauthorized,"
        " admin_disabled, conflict, deployment_unreadable, database_unavailable, method_not_allowed.",
        examples=["not_found"],
    )
    errors: list[ValidationIssue] | None = Field(default=None, description="Per-parameter details of a 422.")


INVALID_REQUEST: Final[dict[int | str, dict[str, Any]]] = {
    422: {"model": Problem, "description": "A parameter or body field is invalid (`reason`: `invalid_parameter`)."}
}
"""Every operation's 422, in place of FastAPI's default (whose schema is not what we answer)."""
DEPLOYMENT_UNREADABLE: Final[dict[int | str, dict[str, Any]]] = {
    503: {"model": Problem, "description": "The deployment file exists but cannot be read (`deployment_unreadable`)."}
}


# --- devices and assets ------------------------------------------------------------------------


class DeviceOut(_Model):
    id: str = Field(description="Device id.", examples=["sol-hk-rooftops-0001"])
    kind: str = Field(description="solar, charger or miner.", examples=["solar"])
    asset: str = Field(description="The asset (pool of devices) it belongs to.", examples=["hk-rooftops"])
    alg: str = Field(description="Signature algorithm of its current key.", examples=["ed25519", "es256"])
    public_key: str = Field(description="Current public key, hex (32 bytes Ed25519; SEC1 P-256).", examples=[KEY])
    status: str = Field(description="active or revoked.", examples=["active"])
    window_s: int = Field(description="The reading interval it is configured for, seconds.", examples=[60])
    registered_ms: int = Field(examples=[1763700000000])
    revoked_ms: int | None = Field(default=None, examples=[None])
    last_seq: int = Field(description="seq of its newest accepted reading (0: none yet).", examples=[4211])
    last_seen_ms: int | None = Field(description="When the gateway last received one of its readings.")
    readings: int = Field(description="Readings accepted.", examples=[4211])
    quarantined: int = Field(description="Messages quarantined.", examples=[3])
    duplicates: int = Field(description="Redelivered copies counted and not stored again.", examples=[12])
    online: bool = Field(description="Active and seen within three of its windows.")


class DeviceKeyOut(_Model):
    alg: str = Field(examples=["ed25519"])
    public_key: str = Field(examples=[KEY])
    valid_from_ms: int = Field(examples=[1763700000000])
    valid_until_ms: int | None = Field(default=None, description="When it was rotated or revoked.")
    ended_by: str | None = Field(default=None, description="rotated or revoked.", examples=[None])


class DeviceDetail(DeviceOut):
    rating: dict[str, int] = Field(description="Nameplate rating.", examples=[{"rated_power_w": 6500}])
    keys: list[DeviceKeyOut] = Field(description="Every key the device has had, oldest first.")


class DevicePage(_Model):
    items: list[DeviceOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class AssetOut(_Model):
    name: str = Field(examples=["hk-rooftops"])
    kind: str = Field(description="The kind of every device in it.", examples=["solar"])
    description: str = Field(examples=["Rooftop solar, Kowloon"])
    created_ms: int = Field(examples=[1763700000000])
    devices: int = Field(description="Devices registered.", examples=[20])
    active_devices: int = Field(examples=[19])
    revoked_devices: int = Field(examples=[1])


class KindMix(_Model):
    kind: str = Field(examples=["solar"])
    assets: int = Field(examples=[1])
    devices: int = Field(examples=[20])


class AssetList(_Model):
    items: list[AssetOut]
    kinds: list[KindMix] = Field(description="Assets and devices per device kind: the asset-class mix.")


# --- readings ----------------------------------------------------------------------------------


class ReadingOut(_Model):
    id: int = Field(description="Storage id: acceptance order.", examples=[123456])
    device_id: str = Field(examples=["sol-hk-rooftops-0001"])
    asset: str = Field(examples=["hk-rooftops"])
    kind: str = Field(examples=["solar"])
    seq: int = Field(examples=[4211])
    ts_ms: int = Field(description="Device time of the reading.", examples=[1763700060000])
    window_s: int = Field(examples=[60])
    metrics: dict[str, int] = Field(
        description="Integer metrics in fixed units.",
        examples=[{"energy_wh": 81, "power_w": 4860, "irradiance_wm2": 712, "temp_dc": 351}],
    )
    revenue: int = Field(description="Minor units.", examples=[32])
    cost: int = Field(description="Minor units.", examples=[0])
    net: int = Field(examples=[32])
    tariff_id: str = Field(examples=["hk-2026-11"])
    received_ms: int
    stored_ms: int
    leaf_hash: str = Field(description="RFC 6962 leaf hash of the message, hex.", examples=[HEX32])
    log_index: int | None = Field(description="Position in the Merkle log; null until appended.")
    epoch: int | None = Field(description="The epoch holding it; null until one closes over it.")
    epoch_status: str | None = Field(
        description="null (pending: not in an epoch yet), closed, sent or anchored.", examples=["anchored"]
    )


class ReadingDetail(ReadingOut):
    message: str = Field(description="The exact signed wire bytes (the Merkle leaf), hex.")


class ReadingPage(_Model):
    items: list[ReadingOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# --- cash flow ---------------------------------------------------------------------------------


class Figures(_Model):
    readings: int = Field(examples=[1440])
    energy_wh: int = Field(examples=[116640])
    revenue: int = Field(description="Minor units.", examples=[46656])
    cost: int = Field(description="Minor units.", examples=[0])
    net: int = Field(description="revenue - cost; may be negative.", examples=[46656])


class CashflowBucketOut(_Model):
    start_ms: int = Field(description="Bucket start (device time, UTC).", examples=[1763697600000])
    readings: int = Field(examples=[1440])
    energy_wh: int = Field(examples=[116640])
    revenue: int = Field(examples=[46656])
    cost: int = Field(examples=[0])
    net: int = Field(examples=[46656])
    expected_readings: float = Field(description="Readings the devices should have sent.", examples=[1440.0])
    coverage: float = Field(
        description="min(1, readings / expected_readings): docs/cashflow.md#coverage.", examples=[1.0]
    )
    uptime: float = Field(description="Producing seconds / expected seconds, at most 1.", examples=[0.5])
    attested: Figures = Field(description="The part whose readings are in epochs anchored on chain.")
    pending: Figures = Field(description="The rest: not yet in an epoch, or in one not anchored yet.")


class CashflowTotals(Figures):
    expected_readings: float = Field(description="Readings expected over the whole selection, empty hours included.")
    coverage: float = Field(description="min(1, readings / expected_readings) over the whole selection.")
    uptime: float
    attested: Figures
    pending: Figures


class CashflowOut(_Model):
    asset: str = Field(description="The asset (for a device: the one it belongs to).", examples=["hk-rooftops"])
    device: str | None = Field(default=None, examples=[None])
    granularity: Literal["hour", "day"]
    from_ms: int | None = Field(description="The range asked for (start rounded down to a bucket).")
    to_ms: int | None = Field(description="Exclusive end of the range asked for.")
    currency: str | None = Field(description="Currency of the newest tariff (minor units).", examples=["HKD"])
    buckets: list[CashflowBucketOut] = Field(description="Buckets that hold readings, oldest first.")
    totals: CashflowTotals


# --- epochs, checkpoints, proofs ---------------------------------------------------------------


class AnchorOut(_Model):
    chain_id: int = Field(examples=[31337])
    contract: str = Field(
        description="The AnchorRegistry address.", examples=["0x5FbDB2315678afecb367f032d93F642f64180aa3"]
    )
    tx_hash: str = Field(examples=[TX])
    block_number: int = Field(examples=[42])
    block_timestamp: int = Field(description="Seconds.", examples=[1763700123])


class EpochOut(_Model):
    number: int = Field(examples=[7])
    status: str = Field(description="closed, sent (transaction sent) or anchored.", examples=["anchored"])
    start_ms: int
    end_ms: int
    leaves_from: int = Field(description="First leaf (log index) of the epoch.", examples=[70000])
    leaves_to: int = Field(description="Tree size of its checkpoint (exclusive end).", examples=[80000])
    readings: int = Field(examples=[10000])
    root: str = Field(description="Merkle root at leaves_to, hex.", examples=[HEX32])
    meta_hash: str = Field(description="SHA-256 of the metadata's RFC 8785 bytes, hex.", examples=[HEX32])
    tx_hash: str | None = Field(description="The anchor transaction.", examples=[TX])
    block_number: int | None = Field(examples=[42])
    block_timestamp: int | None = Field(description="Seconds.", examples=[1763700123])
    gas_used: int | None = Field(examples=[69138])
    closed_ms: int
    anchored_ms: int | None
    anchor: AnchorOut | None = Field(description="Chain, contract and transaction, when anchored and deployed.")
    metadata: dict[str, Any] = Field(description="The epoch metadata (what meta_hash covers).")


class EpochPage(_Model):
    items: list[EpochOut]
    next_cursor: str | None


class CheckpointOut(_Model):
    epoch: int = Field(examples=[7])
    tree_size: int = Field(examples=[80000])
    root: str = Field(examples=[HEX32])
    meta_hash: str = Field(examples=[HEX32])
    anchor: AnchorOut | None


class AssetTotalsOut(_Model):
    readings: int = Field(examples=[90])
    energy_wh: int = Field(examples=[1234567])
    revenue: int = Field(description="Minor units of currency.", examples=[98765])
    cost: int = Field(examples=[100000])
    net: int = Field(description="revenue - cost; negative for a loss.", examples=[-1235])
    currency: str = Field(examples=["HKD"])


class AnchoredCheckpointOut(_Model):
    """Every field ``AnchorRegistry.verifyAssetTotals`` takes as its ``Checkpoint`` argument."""

    epoch: int = Field(examples=[7])
    tree_size: int = Field(examples=[80000])
    root: str = Field(examples=[HEX32])
    meta_hash: str = Field(examples=[HEX32])
    assets_root: str = Field(examples=[HEX32])
    block_number: int = Field(examples=[42])
    timestamp: int = Field(description="The anchoring block's time, seconds.", examples=[1763700123])


class AssetTotalsProofOut(_Model):
    asset: str = Field(examples=["hk-rooftops"])
    asset_key: str = Field(description="SHA-256 of the asset's UTF-8 name, hex.", examples=[HEX32])
    epoch: int = Field(examples=[7])
    totals: AssetTotalsOut
    encoded: str = Field(description="The 83-byte leaf verifyAssetTotals takes as `totals`, hex.")
    index: int = Field(description="The leaf's index in the assets tree (ordered by asset key).", examples=[0])
    count: int = Field(description="The number of leaves (assets) in the tree.", examples=[4])
    proof: list[str] = Field(description="RFC 9162 inclusion proof, hex hashes.", examples=[[HEX32]])
    assets_root: str = Field(description="The epoch metadata's assets_root, hex.", examples=[HEX32])
    checkpoint: AnchoredCheckpointOut | None = Field(description="The anchored checkpoint; null until anchored.")


class CheckpointList(_Model):
    items: list[CheckpointOut] = Field(description="Anchored checkpoints, newest first.")
    next_cursor: str | None


class TreeHead(_Model):
    epoch: int | None = Field(description="The epoch whose checkpoint this is, when asked by epoch.")
    tree_size: int = Field(examples=[70000])
    root: str = Field(examples=[HEX32])


class ConsistencyOut(_Model):
    from_: TreeHead = Field(alias="from", serialization_alias="from")
    to: TreeHead
    proof: list[str] = Field(description="RFC 9162 consistency proof, hex hashes.", examples=[[HEX32]])

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BundleDoc(_Model):
    """Documentation only: the bundle is served exactly as ``protocol.bundle.ProofBundle.to_json``
    makes it, the file ``assetproof verify`` takes."""

    format: Literal["assetproof.bundle"]
    version: Literal[1]
    message: str = Field(description="The exact signed wire bytes, hex.")
    device: dict[str, str] = Field(examples=[{"id": "sol-hk-rooftops-0001", "alg": "ed25519", "public_key": KEY}])
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]
    checkpoint: dict[str, Any] = Field(examples=[{"epoch": 7, "tree_size": 80000, "root": HEX32, "meta_hash": HEX32}])
    metadata: dict[str, Any] | None
    anchor: AnchorOut | None


# --- quarantine and fleet ----------------------------------------------------------------------


class QuarantineOut(_Model):
    id: int
    received_ms: int
    reason: str = Field(examples=["bad_signature"])
    detail: str = Field(examples=["signature does not verify with the device's ed25519 key"])
    topic: str = Field(examples=["assetproof/v1/devices/sol-hk-rooftops-0001/telemetry"])
    device_id: str | None = Field(examples=["sol-hk-rooftops-0001"])
    seq: int | None = Field(examples=[4212])
    raw_size: int = Field(description="Size of the whole payload.", examples=[391])
    raw_sha256: str = Field(description="SHA-256 of the whole payload, hex.", examples=[HEX32])
    epoch: int | None = Field(description="The epoch whose metadata counts it.")


class QuarantineDetail(QuarantineOut):
    raw: str = Field(description="The payload as kept (at most its first 8 KiB), hex.")
    raw_truncated: bool


class QuarantinePage(_Model):
    items: list[QuarantineOut] = Field(description="Newest first.")
    next_cursor: str | None


class ReasonCount(_Model):
    reason: str = Field(examples=["gap"])
    count: int = Field(examples=[3])


class QuarantineReasons(_Model):
    from_ms: int | None
    to_ms: int | None
    total: int
    reasons: list[ReasonCount] = Field(description="Most frequent first.")


class DeviceCounts(_Model):
    total: int
    active: int
    revoked: int
    online: int = Field(description="Active devices seen within three of their windows.")
    never_seen: int
    stalled: int = Field(description="Devices with signed readings the gateway is missing.")
    silent: int = Field(description="Active devices not heard from within three of their windows.")


class MinuteCount(_Model):
    minute_ms: int
    readings: int


class LastSeen(_Model):
    device_id: str
    asset: str
    kind: str
    status: str
    last_seen_ms: int | None
    online: bool


class DeviceLoss(_Model):
    device_id: str
    asset: str
    state: Literal["stalled", "silent"] = Field(
        description="`stalled`: the device signed readings the gateway cannot accept because a reading"
        " before them never arrived; `silent`: active but not heard from within three of its windows."
    )
    head_seq: int = Field(description="The last seq of the device's chain the gateway followed.")
    signed_seq: int = Field(description="The highest seq the device's chain shows it signed.")
    missing: int = Field(description="Readings between the two that never arrived.")
    missing_ranges: list[list[int]] = Field(
        description="Up to ten [first, last] ranges of missing seqs.", examples=[[[118, 118]]]
    )
    waiting: int = Field(description="Later readings received but not accepted (held, or quarantined as gap).")
    last_seen_ms: int | None


class FleetHealth(_Model):
    now_ms: int
    minutes: int = Field(description="The recent window the rates cover.")
    devices: DeviceCounts
    readings_per_minute: list[MinuteCount] = Field(
        description="Readings per minute of device time (the time each reading carries), oldest first."
    )
    readings_per_minute_avg: float
    arrivals_per_minute: list[MinuteCount] = Field(
        default_factory=list,
        description="Readings per minute of arrival (the gateway's clock) over the window, oldest first: the"
        " rate the fleet sends at now, also while it replays or drains a backlog of older readings.",
    )
    arrivals_per_minute_avg: float = Field(
        default=0.0,
        description="Arrivals per minute over the window, or since the first arrival in it when that is later"
        " (at least a minute).",
    )
    rejects: list[ReasonCount] = Field(description="Quarantined messages received in the window, by reason.")
    rejects_total: int
    last_seen: list[LastSeen] = Field(description="Devices by last seen, stalest (or never seen) first.")
    loss: list[DeviceLoss] = Field(
        description="Devices whose readings are going missing: stalled ones (most missing first), then silent ones."
    )


# --- admin -------------------------------------------------------------------------------------


class NewDeviceIn(_Model):
    id: str = Field(description="Device id: lowercase letters, digits and '-'.", examples=["sol-hk-rooftops-0021"])
    alg: Literal["ed25519", "es256"] = Field(examples=["ed25519"])
    public_key: str = Field(description="Public key, hex (made on the device: its private key never travels).")
    rating: dict[str, int] = Field(default_factory=dict, examples=[{"rated_power_w": 6500, "tilt_deg": 18}])
    window_s: int = Field(default=60, ge=1, le=86_400)


class RegisterIn(_Model):
    asset: str = Field(description="Created when new.", examples=["hk-rooftops"])
    kind: Literal["solar", "charger", "miner"]
    asset_description: str = Field(default="", max_length=200)
    devices: list[NewDeviceIn] = Field(min_length=1, max_length=10_000)


class RotateIn(_Model):
    alg: Literal["ed25519", "es256"]
    public_key: str = Field(description="The new public key, hex.")
