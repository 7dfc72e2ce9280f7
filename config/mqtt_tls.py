"""How an MQTT client speaks TLS to the broker: which files, and the one SSL context it builds.

Shared by the gateway, the simulator's publisher and the broker control client (none of which
may import another's package); :mod:`devstack.broker_tls` generates the files.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import AssetproofError

__all__ = ["GATEWAY_LOGIN", "MqttTLSError", "TLSFiles", "client_context", "provisioned_client"]

GATEWAY_LOGIN = "assetproof-gateway"
"""The broker login (and client certificate name) provisioning gives the gateway."""


class MqttTLSError(AssetproofError):
    """TLS files are missing or unreadable."""


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """What a client needs: the CA that signed the broker's certificate, and its own cert/key."""

    ca: Path
    cert: Path
    key: Path


def client_context(files: TLSFiles) -> ssl.SSLContext:
    """A client context that verifies the broker against ``files.ca`` (certificate and host name)
    and presents the client certificate; TLS 1.2 at least."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
        ctx.load_cert_chain(str(files.cert), str(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise MqttTLSError(f"cannot load TLS files {files}: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def provisioned_client(tls_dir: Path, name: str) -> TLSFiles:
    """Where provisioning (:mod:`devstack.broker_tls`) writes ``name``'s client certificate and
    key under ``tls_dir``, with the CA beside them: one layout for the writer and the readers."""
    return TLSFiles(
        ca=tls_dir / "ca.crt", cert=tls_dir / "clients" / f"{name}.crt", key=tls_dir / "clients" / f"{name}.key"
    )
