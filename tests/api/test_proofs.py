"""Proof bundles, consistency proofs and the auditors' export, as an auditor would use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from attestor.export import EXPORT_FILES, epoch_dir_name, export_epochs
from chain.errors import ContractRevert
from chain.types import Checkpoint
from protocol.asset_totals import AssetLeaf, AssetTotalsProof, asset_key
from protocol.bundle import ProofBundle, verify_bundle_offline
from protocol.errors import VerificationError
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.verify import verify_consistency
from store.tables import Epoch, Reading
from tests.api.conftest import make_client
from tests.api.dataset import EPOCH_LEAVES, Dataset


def _reading(dataset: Dataset, *, log_index: int) -> Reading:
    with dataset.engine.connect() as conn:
        return conn.execute(select(Reading).where(Reading.log_index == log_index)).one()  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("log_index", [0, 137, 2 * EPOCH_LEAVES - 1, 2 * EPOCH_LEAVES + 5])
def test_bundle_by_log_index_verifies_offline(client: TestClient, dataset: Dataset, log_index: int) -> None:
    response = client.get(f"/v1/readings/{log_index}/bundle")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    bundle = ProofBundle.parse(response.content)  # the exact file `assetproof verify` reads
    verify_bundle_offline(bundle)
    row = _reading(dataset, log_index=log_index)
    assert bundle.message == bytes(row.raw)
    assert bundle.leaf_index == log_index
    epoch = log_index // EPOCH_LEAVES
    assert bundle.checkpoint.epoch == epoch
    assert bundle.tree_size == (epoch + 1) * EPOCH_LEAVES
    if epoch in dataset.anchored_epochs:
        assert bundle.anchor is not None
        assert (bundle.anchor.chain_id, bundle.anchor.contract) == (
            dataset.chain.chain_id,
            dataset.chain.anchor_registry,
        )
        with dataset.engine.connect() as conn:
            tx = conn.execute(select(Epoch.tx_hash).where(Epoch.number == epoch)).scalar_one()
        assert bundle.anchor.tx_hash == "0x" + bytes(tx).hex()
    else:
        assert bundle.anchor is None  # closed, not anchored yet: still checks offline


def test_bundle_by_device_and_seq_names_the_same_reading(client: TestClient, dataset: Dataset) -> None:
    sim = dataset.devices["evc-kowloon-hub-0002"]  # an es256 device
    body = client.get(f"/v1/devices/{sim.id}/readings/12/bundle").json()
    bundle = ProofBundle.from_json(body)
    verify_bundle_offline(bundle)
    assert bundle.message == sim.sent[11].raw
    assert (bundle.alg, bundle.public_key) == ("es256", sim.key.public_key)
    assert client.get(f"/v1/readings/{bundle.leaf_index}/bundle").json() == body


def test_a_tampered_bundle_does_not_verify(client: TestClient) -> None:
    body = client.get("/v1/readings/3/bundle").json()
    body["inclusion_proof"][0] = "00" * 32
    with pytest.raises(VerificationError):
        verify_bundle_offline(ProofBundle.from_json(body))


def test_bundle_errors(client: TestClient, dataset: Dataset) -> None:
    logged_not_closed = client.get("/v1/readings/1000/bundle")  # in the log, no epoch yet
    assert logged_not_closed.status_code == 409
    assert logged_not_closed.json()["reason"] == "pending"
    sim = dataset.devices["sol-hk-rooftops-0001"]
    unlogged = client.get(f"/v1/devices/{sim.id}/readings/{sim.seq}/bundle")
    assert unlogged.status_code == 409
    assert "not in a closed epoch yet" in unlogged.json()["detail"]
    assert client.get("/v1/readings/5000000/bundle").json()["reason"] == "not_found"
    assert client.get("/v1/readings/5000000/bundle").status_code == 404
    assert client.get(f"/v1/devices/{sim.id}/readings/100000/bundle").status_code == 404
    assert client.get("/v1/devices/nobody-0001/readings/1/bundle").status_code == 404
    assert client.get("/v1/readings/-1/bundle").status_code == 422
    assert client.get("/v1/readings/abc/bundle").status_code == 422


def test_without_a_deployment_file_bundles_carry_no_anchor(dataset: Dataset, tmp_path: Path) -> None:
    with make_client(dataset.url, deployment=tmp_path / "absent.json") as other:
        body = other.get("/v1/readings/0/bundle").json()
    assert body["anchor"] is None
    verify_bundle_offline(ProofBundle.from_json(body))


def test_an_unreadable_deployment_file_is_a_clear_503(dataset: Dataset, tmp_path: Path) -> None:
    broken = tmp_path / "deployment.json"
    broken.write_text('{"chainId": 1}')
    with make_client(dataset.url, deployment=broken) as other:
        response = other.get("/v1/readings/0/bundle")
    assert response.status_code == 503
    assert "deployment file" in response.json()["detail"]


# --- consistency ---------------------------------------------------------------------------------


def test_consistency_between_epochs_verifies(client: TestClient, dataset: Dataset) -> None:
    with dataset.engine.connect() as conn:
        roots = {r.number: bytes(r.root) for r in conn.execute(select(Epoch.number, Epoch.root))}
    for old, new in ((0, 1), (0, 2), (1, 2), (1, 1)):
        body = client.get("/v1/consistency", params={"from": old, "to": new}).json()
        assert (body["from"]["epoch"], body["to"]["epoch"]) == (old, new)
        assert (bytes.fromhex(body["from"]["root"]), bytes.fromhex(body["to"]["root"])) == (roots[old], roots[new])
        verify_consistency(
            size1=body["from"]["tree_size"],
            size2=body["to"]["tree_size"],
            proof=[bytes.fromhex(h) for h in body["proof"]],
            root1=roots[old],
            root2=roots[new],
        )


def test_consistency_by_tree_size(client: TestClient) -> None:
    body = client.get("/v1/consistency", params={"from_size": 7, "to_size": 1050}).json()
    assert body["from"]["epoch"] is None
    verify_consistency(
        size1=7,
        size2=1050,
        proof=[bytes.fromhex(h) for h in body["proof"]],
        root1=bytes.fromhex(body["from"]["root"]),
        root2=bytes.fromhex(body["to"]["root"]),
    )


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"from": 1, "to": 0}, 422, "'to' (0) is before 'from' (1)"),
        ({"from": 0}, 422, "give either"),
        ({"from": 0, "to": 1, "to_size": 5}, 422, "give either"),
        ({}, 422, "give either"),
        ({"from_size": 10, "to_size": 5}, 422, "exceeds"),
        ({"from_size": 1, "to_size": 5000}, 422, "beyond the log (1050 leaves)"),
        ({"from": 0, "to": 9}, 404, "epoch 9 not found"),
        ({"from": "x", "to": 1}, 422, "query parameter 'from'"),
    ],
)
def test_consistency_errors(client: TestClient, params: dict[str, object], status: int, words: str) -> None:
    response = client.get("/v1/consistency", params=params)
    assert response.status_code == status
    assert words in response.json()["detail"]


# --- export --------------------------------------------------------------------------------------


def test_export_serves_exactly_the_exported_bytes(client: TestClient, dataset: Dataset, tmp_path: Path) -> None:
    export_epochs(dataset.engine, first=0, last=2, directory=tmp_path, chain=dataset.chain)
    for epoch in (0, 1, 2):
        folder = epoch_dir_name(epoch)
        for name in EXPORT_FILES:
            response = client.get(f"/v1/export/{folder}/{name}")
            assert response.status_code == 200, (folder, name)
            assert response.content == (tmp_path / folder / name).read_bytes(), (folder, name)
    leaves = client.get("/v1/export/epoch-000001/leaves").content.split(b"\n")
    assert len(leaves) == EPOCH_LEAVES + 1
    assert leaves[-1] == b""
    assert leaf_hash(leaves[0]) == bytes(_reading(dataset, log_index=EPOCH_LEAVES).leaf_hash)
    checkpoint = client.get("/v1/export/epoch-000000/checkpoint.json").json()
    assert checkpoint["anchor"]["chain_id"] == dataset.chain.chain_id
    assert json.loads(client.get("/v1/export/epoch-000002/quarantine.json").content)["digests"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/export/epoch-000003/metadata.json",  # not closed
        "/v1/export/epoch-000003/leaves",
        "/v1/export/epoch-0000001/leaves",  # not the folder's name
        "/v1/export/epoch-1/leaves",
        "/v1/export/epochs/leaves",
        "/v1/export/epoch-000000/secrets.txt",
    ],
)
def test_export_unknown_paths_are_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_an_asset_totals_proof_is_accepted_by_the_contract(client: TestClient, dataset: Dataset) -> None:
    """The API's totals proof is exactly what verifyAssetTotals takes; the contract, not the API,
    says the totals are the anchored ones. Every asset is in every epoch, silent ones at zero."""
    for epoch in dataset.anchored_epochs:
        metadata = client.get(f"/v1/epochs/{epoch}").json()["metadata"]
        assert set(metadata["assets"]) == {sim.asset for sim in dataset.devices.values()}
        for name, totals in metadata["assets"].items():
            body = client.get(f"/v1/assets/{name}/epochs/{epoch}/totals-proof").json()
            assert body["totals"] == {**totals, "currency": metadata["tariff"]["currency"]}
            assert body["assets_root"] == metadata["assets_root"] == body["checkpoint"]["assets_root"]
            c = body["checkpoint"]
            checkpoint = Checkpoint(
                epoch=c["epoch"],
                tree_size=c["tree_size"],
                root=bytes.fromhex(c["root"]),
                meta_hash=bytes.fromhex(c["meta_hash"]),
                assets_root=bytes.fromhex(c["assets_root"]),
                block_number=c["block_number"],
                timestamp=c["timestamp"],
            )
            proof = AssetTotalsProof(
                leaf=AssetLeaf.decode(bytes.fromhex(body["encoded"])),
                index=body["index"],
                count=body["count"],
                proof=tuple(bytes.fromhex(p) for p in body["proof"]),
            )
            got = dataset.reader.verify_asset_totals(checkpoint=checkpoint, totals=proof)
            assert got.asset_key == asset_key(name) == bytes.fromhex(body["asset_key"])
            assert (got.epoch, got.net, got.revenue) == (epoch, totals["net"], totals["revenue"])
            forged = AssetTotalsProof(
                leaf=AssetLeaf.of(
                    asset=name,
                    epoch=epoch,
                    readings=got.readings,
                    energy_wh=got.energy_wh,
                    revenue=got.revenue + 1,
                    cost=got.cost,
                    currency=got.currency,
                ),
                index=proof.index,
                count=proof.count,
                proof=proof.proof,
            )
            with pytest.raises(ContractRevert, match="TotalsNotIncluded"):
                dataset.reader.verify_asset_totals(checkpoint=checkpoint, totals=forged)
    closed = dataset.closed_epochs[0]
    name = next(iter(client.get(f"/v1/epochs/{closed}").json()["metadata"]["assets"]))
    assert client.get(f"/v1/assets/{name}/epochs/{closed}/totals-proof").json()["checkpoint"] is None
    assert client.get("/v1/assets/no-such-asset/epochs/0/totals-proof").status_code == 404
    assert client.get(f"/v1/assets/{name}/epochs/999/totals-proof").status_code == 404
