"""SQLModel tables. Times are integer milliseconds since the Unix epoch (UTC); hashes, keys and
raw messages are bytes; money is integer minor units."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, LargeBinary, Table, false, text
from sqlmodel import Field, SQLModel

from store.status import DeviceStatus, EpochStatus

# SQLite assigns ids only to INTEGER PRIMARY KEY (the rowid); BIGINT elsewhere.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class Asset(SQLModel, table=True):
    """A named pool of devices an investor can hold a share of."""

    name: str = Field(primary_key=True, max_length=63)
    kind: str = Field(max_length=16, description="solar, charger or miner")
    description: str = Field(default="", max_length=200)
    created_ms: int = Field(sa_type=BigInteger)


class Device(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=63)
    kind: str = Field(max_length=16)
    asset: str = Field(foreign_key="asset.name", index=True, max_length=63)
    alg: str = Field(max_length=16)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=DeviceStatus.ACTIVE, max_length=16, description="a DeviceStatus")
    rating: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    window_s: int = Field(description="the reading interval the device is configured for")
    registered_ms: int = Field(sa_type=BigInteger)
    revoked_ms: int | None = Field(default=None, sa_type=BigInteger)


class DeviceKey(SQLModel, table=True):
    """Every key a device has had, with when it was valid: rotation and revocation history."""

    __tablename__ = "device_key"

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.id", index=True, max_length=63)
    alg: str = Field(max_length=16)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    valid_from_ms: int = Field(sa_type=BigInteger)
    valid_until_ms: int | None = Field(default=None, sa_type=BigInteger)
    ended_by: str | None = Field(default=None, max_length=16, description="rotated or revoked")
    new_chain: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=false()),
        description="issued by a resynchronisation: the key's first reading starts a new chain",
    )


class DeviceState(SQLModel, table=True):
    """The head of each device's hash chain as the gateway has followed it: ``last_seq`` and
    ``last_hash`` include chained rejections (readings signed and linked but rejected for their
    content), ``last_ts_ms`` only accepted readings."""

    __tablename__ = "device_state"

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=63)
    last_seq: int = Field(default=0, sa_type=BigInteger)
    last_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last_ts_ms: int = Field(default=0, sa_type=BigInteger)
    last_seen_ms: int | None = Field(default=None, sa_type=BigInteger)
    readings: int = Field(default=0, sa_type=BigInteger)
    quarantined: int = Field(default=0, sa_type=BigInteger)
    duplicates: int = Field(default=0, sa_type=BigInteger)
    rejected: int = Field(default=0, sa_type=BigInteger, description="chained rejections")
    resync_pending: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=false()),
        description="set by a resynchronisation until the device's new chain starts",
    )


class Reading(SQLModel, table=True):
    """An accepted reading: verified, in sequence, plausible. ``raw`` is the exact signed message
    (the Merkle leaf). ``log_index`` and ``epoch`` are set by the attestor."""

    __table_args__ = (
        Index("ix_reading_device_seq", "device_id", "seq", unique=True),
        Index("ix_reading_device_ts", "device_id", "ts_ms"),
        Index(
            "ix_reading_unlogged",
            "id",
            sqlite_where=text("log_index IS NULL"),
            postgresql_where=text("log_index IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    device_id: str = Field(foreign_key="device.id", max_length=63)
    seq: int = Field(sa_type=BigInteger)
    ts_ms: int = Field(sa_type=BigInteger, index=True)
    window_s: int
    metrics: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    revenue: int = Field(sa_type=BigInteger)
    cost: int = Field(sa_type=BigInteger)
    tariff_id: str = Field(max_length=64)
    received_ms: int = Field(sa_type=BigInteger, description="when the gateway received it")
    stored_ms: int = Field(sa_type=BigInteger, description="when its batch was committed")
    log_index: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    epoch: int | None = Field(default=None, sa_type=BigInteger, index=True)


class HeldReading(SQLModel, table=True):
    """A verified reading that arrived ahead of its predecessor (shared subscriptions deliver a
    device's messages to several workers, so order across workers is not guaranteed). It waits
    here, durably and already acknowledged, until the predecessor is stored or the hold timeout
    turns it into a ``gap`` quarantine."""

    __tablename__ = "held_reading"

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=63)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    topic: str = Field(max_length=200)
    received_ms: int = Field(sa_type=BigInteger, index=True)


class Quarantine(SQLModel, table=True):
    """A message that was not accepted, with why. ``raw`` keeps at most the first
    ``QUARANTINE_RAW_LIMIT`` bytes; ``raw_size`` and ``raw_sha256`` describe the whole.

    ``device_id`` is the device whose topic carried the message (the broker login that published
    it; NULL only for a topic that names no device), ``body_device`` the device its body names
    (when it decoded). ``chained``: signed by the device's current key and linked to its chain
    head, so it advanced the chain although its content was rejected; never in cash flow, never
    a Merkle leaf, never dropped by the quarantine budget."""

    __table_args__ = (
        Index(
            "ix_quarantine_chained_link",
            "device_id",
            "seq",
            unique=True,
            sqlite_where=text("chained"),
            postgresql_where=text("chained"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    received_ms: int = Field(sa_type=BigInteger, index=True)
    reason: str = Field(max_length=32, index=True)
    detail: str = Field(default="", max_length=500)
    topic: str = Field(default="", max_length=200)
    device_id: str | None = Field(default=None, max_length=63, index=True)
    seq: int | None = Field(default=None, sa_type=BigInteger)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    raw_size: int
    raw_sha256: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    epoch: int | None = Field(default=None, sa_type=BigInteger, index=True)
    body_device: str | None = Field(default=None, max_length=63)
    chained: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))


class QuarantineWindow(SQLModel, table=True):
    """Per publishing device (``''``: a topic naming no device) and budget window: the
    quarantined messages stored, for the per-device quarantine budget. Old windows are pruned."""

    __tablename__ = "quarantine_window"

    device_id: str = Field(primary_key=True, max_length=63)
    window_ms: int = Field(primary_key=True, sa_type=BigInteger)
    messages: int = Field(default=0, sa_type=BigInteger)
    bytes: int = Field(default=0, sa_type=BigInteger, description="raw bytes stored")


class QuarantineDropped(SQLModel, table=True):
    """Per publishing device and reason: messages the quarantine budget counted but did not
    store (their device was over its budget)."""

    __tablename__ = "quarantine_dropped"

    device_id: str = Field(primary_key=True, max_length=63)
    reason: str = Field(primary_key=True, max_length=32)
    messages: int = Field(default=0, sa_type=BigInteger)
    bytes: int = Field(default=0, sa_type=BigInteger, description="their whole sizes")
    last_ms: int = Field(sa_type=BigInteger, description="when the last one arrived")


class CashflowHourly(SQLModel, table=True):
    """Per device, per hour of device time, per tariff: the sums the dashboards and epoch
    metadata are built from. Days and assets are sums of these rows."""

    __tablename__ = "cashflow_hourly"
    # An asset's range of hours is what every cash-flow view reads; covering, so a month of a
    # few hundred devices is an index-only range scan (migration 0004).
    __table_args__ = (
        Index(
            "ix_cashflow_hourly_asset_hour", "asset", "hour_ms", "readings", "energy_wh", "revenue", "cost", "active_s"
        ),
    )

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=63)
    hour_ms: int = Field(primary_key=True, sa_type=BigInteger)
    tariff_id: str = Field(primary_key=True, max_length=64)
    asset: str = Field(max_length=63, index=True)
    readings: int = Field(default=0)
    energy_wh: int = Field(default=0, sa_type=BigInteger)
    revenue: int = Field(default=0, sa_type=BigInteger)
    cost: int = Field(default=0, sa_type=BigInteger)
    online_s: int = Field(default=0, sa_type=BigInteger, description="sum of the readings' windows")
    active_s: int = Field(default=0, sa_type=BigInteger, description="charging / hashing / generating seconds")


class CashflowAttestedHourly(SQLModel, table=True):
    """Per device, per hour of device time: the sums of the readings in *anchored* epochs. Rows
    grow in the transaction that marks an epoch anchored, so splitting cash flow into attested
    and pending reads hourly sums, never the readings."""

    __tablename__ = "cashflow_attested_hourly"

    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=63)
    hour_ms: int = Field(primary_key=True, sa_type=BigInteger)
    asset: str = Field(max_length=63)
    readings: int = Field(default=0)
    energy_wh: int = Field(default=0, sa_type=BigInteger)
    revenue: int = Field(default=0, sa_type=BigInteger)
    cost: int = Field(default=0, sa_type=BigInteger)


class CashflowAttestedAssetHourly(SQLModel, table=True):
    """``cashflow_attested_hourly`` summed over each asset's devices, kept in the same
    transaction: an asset's attested month is then 720 rows, not 720 per device."""

    __tablename__ = "cashflow_attested_asset_hourly"

    asset: str = Field(primary_key=True, foreign_key="asset.name", max_length=63)
    hour_ms: int = Field(primary_key=True, sa_type=BigInteger)
    readings: int = Field(default=0)
    energy_wh: int = Field(default=0, sa_type=BigInteger)
    revenue: int = Field(default=0, sa_type=BigInteger)
    cost: int = Field(default=0, sa_type=BigInteger)


class TariffRow(SQLModel, table=True):
    """Every tariff version the system has used, as its protocol JSON."""

    __tablename__ = "tariff"

    id: str = Field(primary_key=True, max_length=64)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    loaded_ms: int = Field(sa_type=BigInteger)


QUARANTINE_RAW_LIMIT = 8192


class MerkleNode(SQLModel, table=True):
    """A complete subtree of the RFC 6962 log: level 0 holds the leaf hashes (reading order =
    ``reading.log_index``); level L node i covers leaves i*2^L .. (i+1)*2^L - 1."""

    __tablename__ = "merkle_node"

    level: int = Field(primary_key=True, sa_type=Integer)
    idx: int = Field(primary_key=True, sa_type=BigInteger)
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogState(SQLModel, table=True):
    """The log's size (one row, ``id`` 1), written in the same transaction as its nodes."""

    __tablename__ = "log_state"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=BigInteger)


class Epoch(SQLModel, table=True):
    """A closed epoch and its anchoring: ``closed`` → ``sent`` (tx hash recorded) → ``anchored``."""

    number: int = Field(primary_key=True, sa_type=BigInteger)
    start_ms: int = Field(sa_type=BigInteger)
    end_ms: int = Field(sa_type=BigInteger)
    leaves_from: int = Field(sa_type=BigInteger)
    leaves_to: int = Field(sa_type=BigInteger)
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    meta_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    metadata_json: bytes = Field(sa_column=Column(LargeBinary, nullable=False), description="canonical RFC 8785 bytes")
    status: str = Field(default=EpochStatus.CLOSED, max_length=16, index=True, description="an EpochStatus")
    tx_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    block_number: int | None = Field(default=None, sa_type=BigInteger)
    block_timestamp: int | None = Field(default=None, sa_type=BigInteger, description="the anchoring block's time (s)")
    gas_used: int | None = Field(default=None, sa_type=BigInteger)
    closed_ms: int = Field(sa_type=BigInteger)
    anchored_ms: int | None = Field(default=None, sa_type=BigInteger)


# The Core tables, typed once here: SQLModel declares ``__table__`` on no class mypy can see, so
# queries read these instead of ``Model.__table__``.
_TABLES = SQLModel.metadata.tables
ASSET: Table = _TABLES["asset"]
DEVICE: Table = _TABLES["device"]
DEVICE_KEY: Table = _TABLES["device_key"]
DEVICE_STATE: Table = _TABLES["device_state"]
READING: Table = _TABLES["reading"]
HELD_READING: Table = _TABLES["held_reading"]
QUARANTINE: Table = _TABLES["quarantine"]
QUARANTINE_WINDOW: Table = _TABLES["quarantine_window"]
QUARANTINE_DROPPED: Table = _TABLES["quarantine_dropped"]
CASHFLOW_HOURLY: Table = _TABLES["cashflow_hourly"]
CASHFLOW_ATTESTED_HOURLY: Table = _TABLES["cashflow_attested_hourly"]
CASHFLOW_ATTESTED_ASSET_HOURLY: Table = _TABLES["cashflow_attested_asset_hourly"]
TARIFF: Table = _TABLES["tariff"]
MERKLE_NODE: Table = _TABLES["merkle_node"]
LOG_STATE: Table = _TABLES["log_state"]
EPOCH: Table = _TABLES["epoch"]
