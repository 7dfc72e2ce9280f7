"""The dashboard's verify in Debian's Chromium, against a real anvil: the page reads the device's
key, the checkpoint and the metaHash from the chain itself (eth_call and eth_getLogs from the
browser), with the RPC URL and contract addresses pinned by the user, and never shows VERIFIED on
the API's word.

The store is built in process, as an operator's services would build it: devices registered on
chain by the registrar and in the database, signed readings ingested by the gateway's batch
processor, epochs closed and anchored on anvil by the Attestor; the API under uvicorn serves the
dashboard. Then what a compromised operator does is done to it:

- ``evc-hub-0002``: the database holds another key than the one the registrar registered, and
  the device's readings are signed with that key (the gateway, trusting its database, accepts
  them and the attestor anchors them): every offline check passes;
- ``sol-roof-0002``: its readings are stored, the registrar revokes the device, and only then are
  they anchored (a revoked key's readings anchored after the revocation);
- ``sol-ghost-0001``: in the database, never registered on chain;
- the last epoch's metadata in the database is altered after anchoring (a total inflated).

Bundle files the user opens in the page cover what the API would not serve: a key named that is
not the registry's, a proof against a later checkpoint (the key judged at the first), and a tree
the chain never held.

Anvil is required (the shared session node), as is Chromium; both fail the test with how to
install them when missing.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine, select, update

from api.app import create_app
from attestor.epochs import EpochPolicy
from attestor.service import Attestor
from chain.deployment import Deployment, write_deployment
from chain.types import DeviceRegistration
from chain.writer import ChainClient
from config import Settings
from device_sim.models import build_model
from devstack.anvil import AnvilNode
from devstack.mosquitto import free_port
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.cashflow import HOUR_MS
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, Message, sign_body
from protocol.epoch import EpochMetadata
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store.db import make_engine, migrate
from store.devices import NewDevice, ensure_asset, register_devices
from store.tables import EPOCH
from tests.support.chain import funded_account
from tests.support.dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.devices import TARIFF
from tests.support.processes import REPO, wait_for

MINUTE_MS = 60_000
READINGS = 12
"""Per device: with 6 devices and epochs of 20 leaves, four epochs (the first-checkpoint search
walks back over several)."""
EPOCH_LEAVES = 20
TIMEOUT_MS = 30_000
GENUINE_ES256 = "evc-hub-0001"
GENUINE_ED25519 = "sol-roof-0001"
KEY_REPLACED = "evc-hub-0002"
REVOKED = "sol-roof-0002"
GHOST = "sol-ghost-0001"
TAMPERED_EPOCH_DEVICE = "rig-pod-0001"
"""Only this device reports in the last minutes, so the last epoch (whose metadata is altered)
holds its readings alone."""


@dataclass(frozen=True)
class Spec:
    id: str
    asset: str
    kind: DeviceKind
    alg: str
    rated_power_w: int
    rated_hashrate_ghs: int = 0


FLEET = (
    Spec(GENUINE_ES256, "kowloon-hub", DeviceKind.CHARGER, "es256", 1_000_000),
    Spec(KEY_REPLACED, "kowloon-hub", DeviceKind.CHARGER, "es256", 1_000_000),
    Spec(GENUINE_ED25519, "hk-rooftops", DeviceKind.SOLAR, "ed25519", 1_000_000),
    Spec(REVOKED, "hk-rooftops", DeviceKind.SOLAR, "ed25519", 1_000_000),
    Spec(GHOST, "hk-rooftops", DeviceKind.SOLAR, "ed25519", 1_000_000),
    Spec(TAMPERED_EPOCH_DEVICE, "hydro-pod", DeviceKind.MINER, "ed25519", 1_000_000, 1_000_000),
)


@dataclass
class VerifyStack:
    api_url: str
    rpc_url: str
    deployment: Deployment
    sent: dict[str, list[Message]]
    tampered_epoch: int

    def pin_query(self) -> str:
        return urlencode(
            {
                "rpc": self.rpc_url,
                "anchor": self.deployment.anchor_registry.address,
                "devices": self.deployment.device_registry.address,
            }
        )


def _build(workdir: Path, node: AnvilNode) -> tuple[Settings, VerifyStack]:
    url = f"sqlite:///{workdir / 'assetproof.db'}"
    engine = make_engine(url)
    migrate(engine)
    reader = make_engine(url, writer=False)
    record_tariff(engine, TARIFF)

    w3 = node.web3()
    operator = funded_account(w3)
    # Every role is this test's account: the page's checks do not depend on who holds which.
    client = ChainClient(w3, account=operator)
    deployment = client.deploy()
    # Epochs are priced with the tariff in force on chain: one from the start of time.
    client.publish_tariff(TARIFF, effective_from=0)
    deployment_path = workdir / "deployment.json"
    write_deployment(deployment_path, deployment)

    keys = {spec.id: DeviceKey.generate(spec.alg) for spec in FLEET}
    models = {spec.id: build_model(spec.kind, seed=n) for n, spec in enumerate(FLEET, start=1)}
    registered = {spec.id: keys[spec.id] for spec in FLEET}
    registered[KEY_REPLACED] = DeviceKey.generate("es256")  # the registrar's key; the device signs with another
    client.register_devices(
        DeviceRegistration(
            device_id=spec.id,
            asset=spec.asset,
            alg=spec.alg,
            public_key=registered[spec.id].public_key,
            kind=spec.kind,
            window_s=60,
            rated_power_w=spec.rated_power_w,
            rated_hashrate_ghs=spec.rated_hashrate_ghs,
            cert_hash=b"",
        )
        for spec in FLEET
        if spec.id != GHOST
    )
    registered_at = int(w3.eth.get_block("latest")["timestamp"])
    for spec in FLEET:
        ensure_asset(engine, name=spec.asset, kind=spec.kind.value, now_ms=0)
    for spec in FLEET:
        register_devices(
            engine,
            asset=spec.asset,
            devices=[
                NewDevice(
                    id=spec.id,
                    kind=spec.kind.value,
                    alg=spec.alg,
                    public_key=keys[spec.id].public_key,
                    rating=models[spec.id].rating_json(),
                    window_s=60,
                )
            ],
            now_ms=0,
        )

    # Readings dated in the hour before registration (within the registry's backfill bound) and
    # received two seconds after their window: chain time decides key validity, not these.
    start_ms = (registered_at - 3600) * 1000
    now_ms = [start_ms + READINGS * MINUTE_MS + 10_000]  # the services' clock, moved on below
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: now_ms[0])
    sent: dict[str, list[Message]] = {spec.id: [] for spec in FLEET}

    def ingest(specs: list[Spec], minutes: range) -> None:
        for minute in minutes:
            batch = []
            for spec in specs:
                previous = sent[spec.id][-1].chain_hash if sent[spec.id] else GENESIS_PREV
                window_start = start_ms + minute * MINUTE_MS
                ts = window_start + MINUTE_MS  # the end of the window it covers
                body = Body(
                    device=spec.id,
                    seq=len(sent[spec.id]) + 1,
                    ts_ms=ts,
                    kind=spec.kind,
                    window_s=60,
                    metrics=models[spec.id].step(start_ms=window_start, window_s=60),
                    prev=previous,
                )
                message = sign_body(body, keys[spec.id])
                sent[spec.id].append(message)
                batch.append(Incoming(telemetry_topic(spec.id), message.raw, ts + 2_000))
            processor.process(batch)

    everyone = [spec for spec in FLEET if spec.id != TAMPERED_EPOCH_DEVICE]
    ingest(everyone, range(READINGS))
    attestor = Attestor(
        engine,
        ChainClient(w3, account=operator, deployment=deployment),
        policy=EpochPolicy(window_ms=10 * 24 * HOUR_MS, max_leaves=EPOCH_LEAVES),
        clock_ms=lambda: now_ms[0],
    )
    # The revoked device's readings are stored; the registrar revokes it; then they are anchored.
    client.revoke(device_id=REVOKED)
    attestor.step()
    attestor.anchor_all()
    # The last epoch: one device alone, then its metadata altered in the database.
    miner = [spec for spec in FLEET if spec.id == TAMPERED_EPOCH_DEVICE]
    now_ms[0] += EPOCH_LEAVES * MINUTE_MS
    ingest(miner, range(READINGS, READINGS + EPOCH_LEAVES))
    attestor.step()
    attestor.anchor_all()
    processor.close()
    reader.dispose()
    tampered = _inflate_last_epoch(engine)
    engine.dispose()
    stack = VerifyStack(api_url="", rpc_url=node.url, deployment=deployment, sent=sent, tampered_epoch=tampered)
    settings = Settings(database_url=url, deployment=deployment_path, public_rpc_url=node.url)
    return settings, stack


def _inflate_last_epoch(engine: Engine) -> int:
    """Double the revenue of every asset in the last anchored epoch's stored metadata (kept
    valid and canonical: only the chain's metaHash can tell)."""
    with engine.begin() as conn:
        number, raw = conn.execute(
            select(EPOCH.c.number, EPOCH.c.metadata_json).order_by(EPOCH.c.number.desc()).limit(1)
        ).one()
        doc = json.loads(raw)
        for totals in doc["assets"].values():
            totals["revenue"] *= 2
            totals["net"] = totals["revenue"] - totals["cost"]
        altered = EpochMetadata.from_json(doc).canonical_bytes()
        conn.execute(update(EPOCH).where(EPOCH.c.number == number).values(metadata_json=altered))
    return int(number)


@pytest.fixture(scope="module", autouse=True)
def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING, pytrace=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, anvil_node: AnvilNode) -> Iterator[VerifyStack]:
    settings, stack = _build(tmp_path_factory.mktemp("dashboard-verify"), anvil_node)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout_s=20, what="uvicorn started")
    stack.api_url = f"http://127.0.0.1:{port}"
    yield stack
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"the page threw: {errors}"


def _verify(page: Page, stack: VerifyStack, device: str, seq: int, *, pinned: bool = True) -> dict[str, Any]:
    query = f"?poll=500&{stack.pin_query()}" if pinned else "?poll=500"
    page.goto(f"{stack.api_url}/{query}#verify/dev/{device}/{seq}")
    return _outcome(page, f"{device}-{seq}")


def _outcome(page: Page, name: str) -> dict[str, Any]:
    verdict = page.wait_for_selector(".result .verdict")
    assert verdict is not None
    page.screenshot(path=str(ARTIFACTS / f"verify-{name}.png"), full_page=True)
    checks = {
        row.get_attribute("data-check") or "": (
            row.get_attribute("data-status") or "",
            row.inner_text(),
        )
        for row in page.query_selector_all(".result .check-row")
    }
    return {
        "title": verdict.get_attribute("data-verdict"),
        "kind": verdict.get_attribute("data-kind"),
        "failed": (verdict.get_attribute("data-failed") or "").split(),
        "why": verdict.inner_text(),
        "status": {k: v[0] for k, v in checks.items()},
        "text": {k: v[1] for k, v in checks.items()},
        "classes": verdict.get_attribute("class") or "",
    }


ALL_PASS = dict.fromkeys(
    ("message", "leaf", "inclusion", "checkpoint", "metadata", "device", "signature", "key"), "pass"
)


@pytest.mark.parametrize("device", [GENUINE_ES256, GENUINE_ED25519])
def test_a_genuine_reading_is_verified_against_the_pinned_chain(stack: VerifyStack, page: Page, device: str) -> None:
    seq = READINGS  # in the last epoch of the first run: the first-checkpoint search has epochs before it
    out = _verify(page, stack, device, seq)
    assert (out["title"], out["kind"]) == ("VERIFIED", "verified"), out["why"]
    assert out["status"] == ALL_PASS, out["text"]
    assert "verified" in out["classes"].split()
    alg = "ECDSA P-256" if device == GENUINE_ES256 else "Ed25519"
    assert f"{alg} signature valid under the DeviceRegistry's key #0" in out["text"]["signature"]
    assert "acceptsReading: Valid" in out["text"]["key"]
    assert "verifyCheckpoint true" in out["text"]["checkpoint"]
    assert "the metaHash anchored" in out["text"]["metadata"]
    sources = page.locator("[data-pin]").evaluate_all("(rows) => rows.map((r) => r.dataset.source)")
    assert sources == ["link", "link", "link"]
    checked = page.locator('[data-testid="checked-against"]').inner_text()
    assert stack.deployment.device_registry.address in checked
    assert "pinned by this link" in checked


def test_a_key_that_is_not_the_registry_s_is_not_verified(stack: VerifyStack, page: Page) -> None:
    out = _verify(page, stack, KEY_REPLACED, 3)
    assert out["title"] == "FAILED"
    assert out["failed"] == ["signature"], out["why"]
    # Everything the operator controls is consistent: only the registry's key tells.
    for check in ("message", "leaf", "inclusion", "checkpoint", "metadata", "device"):
        assert out["status"][check] == "pass", (check, out["text"][check])
    assert "key mismatch: the bundle names key" in out["text"]["signature"]
    assert "which is not the DeviceRegistry's" in out["text"]["signature"]


def test_tampered_epoch_metadata_is_named(stack: VerifyStack, page: Page) -> None:
    out = _verify(page, stack, TAMPERED_EPOCH_DEVICE, EPOCH_LEAVES)
    assert out["title"] == "FAILED"
    assert out["failed"] == ["metadata"], out["why"]
    assert "metaHash mismatch" in out["text"]["metadata"]
    assert f"for epoch {stack.tampered_epoch}" in out["text"]["metadata"]
    assert out["status"]["signature"] == out["status"]["key"] == "pass"


def test_a_reading_of_a_key_revoked_before_its_anchor_is_refused(stack: VerifyStack, page: Page) -> None:
    out = _verify(page, stack, REVOKED, 2)
    assert out["title"] == "FAILED"
    assert out["failed"] == ["key"], out["why"]
    assert out["status"]["signature"] == "pass"  # its own key signed it: the key's time is what fails
    assert "acceptsReading refused the key: AnchoredAfterKey" in out["text"]["key"]
    assert "revoked" in out["text"]["key"]


def test_a_device_not_on_chain_is_not_verified(stack: VerifyStack, page: Page) -> None:
    out = _verify(page, stack, GHOST, 1)
    assert out["title"] == "FAILED"
    assert out["failed"] == ["device"], out["why"]
    assert "is not registered in DeviceRegistry" in out["text"]["device"]


def test_unpinned_the_chain_the_api_names_is_never_verified(stack: VerifyStack, page: Page) -> None:
    out = _verify(page, stack, GENUINE_ES256, 2, pinned=False)
    # Every check ran (against the chain the API names) and passed, and still: not VERIFIED.
    assert out["status"] == ALL_PASS, out["text"]
    assert (out["title"], out["kind"]) == ("NOT VERIFIED", "unpinned")
    assert "verified" not in out["classes"].split()
    assert "JSON-RPC URL, AnchorRegistry, DeviceRegistry came from the API, not from you" in out["why"]
    assert page.locator('[data-testid="pin-state"]').inner_text().startswith("Not pinned")
    sources = page.locator("[data-pin]").evaluate_all("(rows) => rows.map((r) => r.dataset.source)")
    assert sources == ["api", "api", "api"]
    assert "badge warn" in (page.get_attribute("#chain-badge", "class") or "")
    # What the API names (the page's fallback, shown as the API's).
    info = _get(stack, "/v1/chain")
    assert info["device_registry"] == stack.deployment.device_registry.address
    assert info["anchor_registry"] == stack.deployment.anchor_registry.address


def test_a_pin_saved_in_the_browser_is_used_and_shown(stack: VerifyStack, page: Page) -> None:
    page.goto(f"{stack.api_url}/?poll=500#verify")
    form = page.locator(".pin-form")
    form.locator("input[name=rpc]").fill(stack.rpc_url)
    form.locator("input[name=anchor]").fill(stack.deployment.anchor_registry.address)
    form.locator("input[name=devices]").fill(stack.deployment.device_registry.address)
    form.locator("button[type=submit]").click()
    sources = page.locator("[data-pin]").evaluate_all("(rows) => rows.map((r) => r.dataset.source)")
    assert sources == ["saved", "saved", "saved"]
    page.goto(f"{stack.api_url}/?poll=500#verify/dev/{GENUINE_ES256}/4")
    out = _outcome(page, "saved-pin")
    assert out["title"] == "VERIFIED", out["why"]
    assert "pinned in this browser's setting" in page.locator('[data-testid="checked-against"]').inner_text()
    # A malformed value is refused, not saved.
    form = page.locator(".pin-form")
    form.locator("input[name=anchor]").fill("0x1234")
    form.locator("button[type=submit]").click()
    assert "Not saved: AnchorRegistry malformed" in page.locator(".pin-message").inner_text()
    page.locator(".clear-pin").click()
    sources = page.locator("[data-pin]").evaluate_all("(rows) => rows.map((r) => r.dataset.source)")
    assert sources == ["api", "api", "api"]


def test_a_pinned_rpc_the_csp_refuses_is_named(stack: VerifyStack, page: Page) -> None:
    query = urlencode(
        {
            "rpc": "https://rpc.example.org:8545",
            "anchor": stack.deployment.anchor_registry.address,
            "devices": stack.deployment.device_registry.address,
        }
    )
    page.goto(f"{stack.api_url}/?poll=500&{query}#verify/dev/{GENUINE_ES256}/2")
    out = _outcome(page, "csp-refused")
    assert out["title"] == "NOT VERIFIED"
    notice = page.locator('[data-testid="root-source"]').inner_text()
    assert "Content-Security-Policy" in notice
    assert "https://rpc.example.org:8545" in notice
    # Offline checks still ran, and what came from the API is said to be the API's.
    assert out["status"]["inclusion"] == "pass"
    assert out["status"]["signature"] == "warn"
    assert "that key is from the API, not checked against the chain" in out["text"]["signature"]


def test_a_bundle_file_is_checked_against_the_pinned_chain(stack: VerifyStack, page: Page, tmp_path: Path) -> None:
    bundle = _get(stack, f"/v1/devices/{GENUINE_ED25519}/readings/5/bundle")
    bundle["device"]["public_key"] = "00" * 32  # what the bundle names is never what is checked
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    page.goto(f"{stack.api_url}/?poll=500&{stack.pin_query()}#verify")
    page.set_input_files(".bundle-file input", str(path))
    out = _outcome(page, "file")
    assert out["title"] == "VERIFIED", out["why"]
    assert "the bundle named another key" in out["text"]["signature"]


def test_the_page_computes_its_own_selectors_and_device_ids(stack: VerifyStack, page: Page) -> None:
    abi = {
        name: json.loads((REPO / "chain" / "artifacts" / f"{name}.json").read_text())["abi"]
        for name in ("AnchorRegistry", "DeviceRegistry")
    }
    declared = {
        f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        for items in abi.values()
        for item in items
        if item["type"] in ("function", "error", "event")
    }
    page.goto(f"{stack.api_url}/?poll=500#verify")
    got = page.evaluate(
        """async () => {
            const r = await import("/js/rpc.js");
            const k = await import("/js/keccak.js");
            const m = await import("/js/merkle.js");
            const o = await import("/js/onchain.js");
            return {
                signatures: [...Object.values(r.SIGNATURES), ...Object.values(r.EVENTS), ...Object.values(r.ERRORS)],
                selectors: Object.fromEntries(Object.values(r.SIGNATURES).map((s) => [s, k.selector(s)])),
                device: m.bytesToHex(o.deviceKey("evc-hub-0001")),
                long: m.bytesToHex(k.keccak256(new TextEncoder().encode("x".repeat(300)))),
            };
        }"""
    )
    assert set(got["signatures"]) <= declared, set(got["signatures"]) - declared
    for signature, selector in got["selectors"].items():
        assert selector == "0x" + function_signature_to_4byte_selector(signature).hex()
    assert got["device"] == keccak(b"evc-hub-0001").hex()
    assert got["long"] == keccak(b"x" * 300).hex()


def test_the_auditor_view_states_what_it_checked(stack: VerifyStack, page: Page) -> None:
    page.goto(f"{stack.api_url}/?poll=500&{stack.pin_query()}#auditor")
    rows = page.locator(".checkpoints-table tbody tr")
    rows.first.wait_for()
    total = rows.count()
    page.wait_for_function(
        f"() => document.querySelectorAll('.chain-cell .check-chip.pass').length === {total}", timeout=TIMEOUT_MS
    )
    page.wait_for_function("() => document.querySelectorAll('.meta-cell .check-chip').length > 0")
    # The metadata altered after anchoring is a finding, named; the others match the chain.
    tampered = page.locator(f'tr[data-epoch="{stack.tampered_epoch}"] .meta-cell').inner_text()
    assert "metaHash mismatch" in tampered
    assert page.locator(".meta-cell .check-chip.pass").count() == total - 1
    findings = page.locator('[data-testid="findings"] strong').inner_text()
    assert findings == "1"
    scope = page.locator('[data-testid="audit-scope"]').inner_text()
    assert "Checked in this browser:" in scope
    assert f"{total} of {total} checkpoints read from the chain" in scope
    assert "Not checked here: device signatures and keys against the DeviceRegistry" in scope
    assert "none" not in findings.lower()
    page.screenshot(path=str(ARTIFACTS / "auditor-scope.png"), full_page=True)

    # Unpinned: the view says the chain it read is the API's.
    page.goto(f"{stack.api_url}/?poll=500#auditor")
    page.locator('[data-testid="auditor-unpinned"]').wait_for()
    assert "came from the API" in page.locator('[data-testid="auditor-unpinned"]').inner_text()


def test_a_bundle_against_a_later_checkpoint_is_judged_at_the_first(
    stack: VerifyStack, page: Page, tmp_path: Path
) -> None:
    """A reading of epoch 0 proved against epoch 2's checkpoint (a valid bundle, not the API's):
    the page finds on chain that epoch 0 first included it, and judges the key at that time."""
    later = 2
    bundle = _get(stack, f"/v1/devices/{GENUINE_ES256}/readings/1/bundle")
    assert bundle["checkpoint"]["epoch"] == 0
    messages = [
        line
        for epoch in range(later + 1)
        for line in _get_raw(stack, f"/v1/export/{_dir(epoch)}/leaves").split(b"\n")
        if line
    ]
    log = MerkleLog()
    log.extend_hashes([leaf_hash(m) for m in messages])
    epoch = _get(stack, f"/v1/epochs/{later}")
    assert log.size == epoch["leaves_to"]
    assert log.root(log.size).hex() == epoch["root"]
    bundle.update(
        tree_size=log.size,
        inclusion_proof=[h.hex() for h in log.inclusion_proof(bundle["leaf_index"], log.size)],
        checkpoint={"epoch": later, "tree_size": log.size, "root": epoch["root"], "meta_hash": epoch["meta_hash"]},
        metadata=_get(stack, f"/v1/export/{_dir(later)}/metadata.json"),
        anchor={
            **bundle["anchor"],
            "tx_hash": epoch["tx_hash"],
            "block_number": epoch["block_number"],
            "block_timestamp": epoch["block_timestamp"],
        },
    )
    path = tmp_path / "later.json"
    path.write_text(json.dumps(bundle))
    page.goto(f"{stack.api_url}/?poll=500&{stack.pin_query()}#verify")
    page.set_input_files(".bundle-file input", str(path))
    out = _outcome(page, "later-checkpoint")
    assert out["title"] == "VERIFIED", out["why"]
    assert f"holds epoch {later}" in out["text"]["checkpoint"]
    assert "the leaf was first anchored in epoch 0" in out["text"]["checkpoint"]


def _dir(epoch: int) -> str:
    return f"epoch-{epoch:06d}"


def _get_raw(stack: VerifyStack, path: str) -> bytes:
    with urllib.request.urlopen(stack.api_url + path, timeout=10) as response:
        return bytes(response.read())


def _get(stack: VerifyStack, path: str) -> Any:
    return json.loads(_get_raw(stack, path))


def test_a_node_on_the_user_s_loopback_can_be_pinned(stack: VerifyStack, page: Page) -> None:
    """The API names 127.0.0.1:PORT; the user pins the same node as localhost:PORT, which only
    the policy's loopback sources (``http://localhost:*``) let the page call."""
    port = stack.rpc_url.rsplit(":", 1)[1]
    query = urlencode(
        {
            "rpc": f"http://localhost:{port}",
            "anchor": stack.deployment.anchor_registry.address,
            "devices": stack.deployment.device_registry.address,
        }
    )
    page.goto(f"{stack.api_url}/?poll=500&{query}#verify/dev/{GENUINE_ED25519}/3")
    out = _outcome(page, "loopback-pin")
    assert out["title"] == "VERIFIED", out["why"]
    assert f"at http://localhost:{port}" in page.locator('[data-testid="checked-against"]').inner_text()


def test_a_bundle_for_a_tree_never_anchored_fails_at_the_checkpoint(
    stack: VerifyStack, page: Page, tmp_path: Path
) -> None:
    """A bundle consistent in itself (a one-leaf tree of its own message) whose checkpoint the
    chain never held: the offline checks pass, the chain's does not."""
    bundle = _get(stack, f"/v1/devices/{GENUINE_ES256}/readings/2/bundle")
    root = leaf_hash(bytes.fromhex(bundle["message"])).hex()
    bundle.update(leaf_index=0, tree_size=1, inclusion_proof=[])
    bundle["checkpoint"].update(tree_size=1, root=root)
    path = tmp_path / "phantom.json"
    path.write_text(json.dumps(bundle))
    page.goto(f"{stack.api_url}/?poll=500&{stack.pin_query()}#verify")
    page.set_input_files(".bundle-file input", str(path))
    out = _outcome(page, "phantom-tree")
    assert out["title"] == "FAILED"
    assert out["failed"] == ["checkpoint"], out["why"]
    assert out["status"]["inclusion"] == "pass"
    assert "is not the one anchored: tree size 1 (chain: " in out["text"]["checkpoint"]
