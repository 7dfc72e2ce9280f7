"""Provisioning a fleet for a local stack: keys in a keystore, rows in the store, keys on chain,
and the broker's logins, access rules and TLS files. Used by ``assetproof devices provision``,
the demo, the benchmarks and the tests; all four must agree, so there is one of it.

Keys created for a batch the store then refuses are removed again.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from config.clock import wall_ms

__all__ = ["broker_files", "provision_fleet"]


def broker_files(directory: Path) -> tuple[Path, Path]:
    """The broker's dynamic-security config and the gateway's login beside it."""
    from devstack.broker_auth import BrokerAuthDir

    auth = BrokerAuthDir(directory)
    return auth.config, auth.gateway_login_file


def provision_fleet(
    *,
    engine: Any,
    keystore: Path,
    broker_auth: Path,
    chain: Any,
    kind: str,
    count: int,
    asset: str,
    alg: str = "ed25519",
    window: int = 60,
    seed: int = 0,
    broker: str | None = None,
    share_group: str = "assetproof-gateway",
    on_broker_change: Any = None,
    broker_tls_ca: Path | None = None,
) -> list[Any]:
    """Provision ``count`` devices of ``kind`` in ``asset``: keys in ``keystore``, rows in the store
    behind ``engine``, keys on chain when ``chain`` (a ``ChainClient``) is given, and broker logins
    in the dynamic-security config in ``broker_auth``: written fresh (with the gateway login for
    ``share_group`` and the admin login) the first time, later added through the broker at
    ``broker`` (HOST:PORT) when it answers, else in the file. ``on_broker_change`` receives the
    ``devstack.broker_control.BrokerChange``. Raises ``AssetproofError`` with what went wrong.
    Returns the ``device_sim.provision.ProvisionedDevice`` list."""
    from device_sim.keystore import Keystore
    from device_sim.provision import provision as make_devices
    from devstack.broker_auth import ADMIN_USER, GATEWAY_USER, BrokerAuthDir, Login, write_broker_auth
    from devstack.broker_control import BrokerChange, add_device_logins
    from protocol.envelope import DeviceKind
    from protocol.epoch import validate_asset_name
    from protocol.errors import AssetproofError, MalformedError
    from store.devices import NewDevice, ensure_asset, register_devices

    try:
        device_kind = DeviceKind(kind)
    except ValueError:
        raise MalformedError(f"kind must be solar, charger or miner, got {kind!r}") from None
    validate_asset_name(asset)
    store = Keystore(keystore)
    broker_auth.mkdir(mode=0o700, parents=True, exist_ok=True)
    auth = BrokerAuthDir(broker_auth)
    ensure_asset(engine, name=asset, kind=device_kind.value, now_ms=wall_ms())
    devices = make_devices(store, kind=device_kind, count=count, asset=asset, alg=alg, window_s=window, seed=seed)
    try:
        register_devices(
            engine,
            asset=asset,
            devices=[
                NewDevice(
                    id=d.id, kind=d.kind.value, alg=d.alg, public_key=d.public_key, rating=d.rating, window_s=d.window_s
                )
                for d in devices
            ],
            now_ms=wall_ms(),
        )
    except AssetproofError as exc:
        for d in devices:
            store.path(d.id).unlink(missing_ok=True)
        raise AssetproofError(f"{exc} (the new keys were removed again)") from None

    if chain is not None:
        from chain.errors import ChainError
        from chain.types import DeviceRegistration

        try:
            # Before any device signs: a key is valid on chain from its registration block on.
            chain.register_devices(
                DeviceRegistration.from_rating(
                    device_id=d.id,
                    asset=asset,
                    alg=d.alg,
                    public_key=d.public_key,
                    kind=d.kind,
                    rating=d.rating,
                    window_s=d.window_s,
                    cert_hash=b"",
                )
                for d in devices
            )
        except ChainError as exc:
            raise ChainError(
                f"registered in the store but not on chain: {exc}. Run the same provision again after fixing the chain;"
                " devices already on chain are skipped"
            ) from None

    credentials = {d.id: d.mqtt_password for d in devices}
    if auth.config.exists():
        change = add_device_logins(auth, devices=credentials, broker=broker, tls_ca=broker_tls_ca)
    else:
        gateway = Login(GATEWAY_USER, secrets.token_urlsafe(24))
        admin = Login(ADMIN_USER, secrets.token_urlsafe(24))
        # Logins first: the config names them, and a config without its admin login could only
        # be changed by stopping the broker.
        auth.write_login(auth.gateway_login_file, gateway)
        auth.write_login(auth.admin_login_file, admin)
        write_broker_auth(path=auth.config, devices=credentials, gateway=gateway, admin=admin, share_group=share_group)
        change = BrokerChange("file", f"wrote {auth.config} (start the broker with it)")
    if on_broker_change is not None:
        on_broker_change(change)
    from devstack.broker_tls import BrokerTLSDir, provision_broker_tls

    # Beside the logins: the broker's TLS CA (kept across runs), its certificate, one client
    # certificate per device (in the keystore) and per service login.
    provision_broker_tls(
        BrokerTLSDir(broker_auth / "tls"),
        keystore=store,
        device_ids=[d.id for d in devices],
        logins=[GATEWAY_USER, ADMIN_USER],
    )
    return devices
