"""The dashboard end to end, in Debian's Chromium driven by Playwright, against a running
assetproof: devices provisioned on a real anvil, Mosquitto with per-device auth, a gateway
process fed by ``assetproof simulate``, an attestor process anchoring on anvil, and the API under
uvicorn serving the dashboard.

Chromium is required, not optional: without ``/usr/bin/chromium`` these tests fail and say how to
install it. Screenshots are written to ``test-artifacts/dashboard/`` and their paths printed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from eth_utils.abi import function_signature_to_4byte_selector
from playwright.sync_api import Browser, Page, sync_playwright

from api.routes.chain_info import SELECTORS, SIGNATURES
from devstack.anvil import AnvilNode
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import MerkleLog
from tests.support.dashboard import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    CHROMIUM_MISSING,
    HOUR_MS,
    Stack,
    http_json,
    new_stack,
    sunny_start,
    unanchored_readings,
)
from tests.support.processes import REPO, wait_for

POLL_MS = 500
"""The page's polling period here (``?poll=``): live updates show within a second."""
TIMEOUT_MS = 30_000
SCREENSHOTS: list[Path] = []
TAMPERED = ("rig-hydro-pod-0001", 30)


@pytest.fixture(scope="module", autouse=True)
def require_chromium() -> None:
    """Before the stack is built: a machine without Chromium learns so in a second, not after
    half a minute of setup."""
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING, pytrace=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, anvil_node: AnvilNode) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("dashboard"), anvil_node)
    try:
        stack.start_ingest()
        stack.api_url = stack.start_api("api", public_rpc_url=anvil_node.url)
        # Three simulated hours in three seconds, with a few faulty messages for the fleet view,
        # from a fixed time of day: at night the rooftops earn nothing and their net line is flat.
        start = sunny_start(now_ms=time.time_ns() // 1_000_000, span_ms=3 * HOUR_MS)
        stack.simulate(accelerate=3600, seconds=3, fault_rate=0.02, start_ms=start)
        # Then the last quarter of an hour up to now (the devices skip the hours between), for the
        # fleet view's readings per minute of recent device time.
        stack.simulate(accelerate=900, seconds=1)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def anchored(stack: Stack) -> Stack:
    """The stack once the attestor has anchored every stored reading."""
    if "attestor" not in stack.processes:
        stack.start_attestor()
    wait_for(lambda: unanchored_readings(stack.db_url) == 0, timeout_s=60, what="every reading anchored")
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, capsys: pytest.CaptureFixture[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # Shown even under output capture, so a plain `pytest -q` run says where to look.
    with capsys.disabled():
        for path in SCREENSHOTS:
            print(f"\n  screenshot: {path}")
    SCREENSHOTS.clear()
    assert errors == [], f"the page logged errors: {errors}"


def _open(page: Page, base: str, view: str, *, pin: Stack | None = None) -> None:
    """``pin``: the chain pinned in the link, as a user holding the deployment file would."""
    query = "" if pin is None else "&" + urlencode(_pin(pin))
    page.goto(f"{base}/?poll={POLL_MS}{query}#{view}")


def _pin(stack: Stack) -> dict[str, str]:
    return {
        "rpc": stack.node.url,
        "anchor": stack.deployment.anchor_registry.address,
        "devices": stack.deployment.device_registry.address,
    }


def _shot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.append(path.relative_to(REPO))
    return path


def _drawn(page: Page, selector: str) -> dict[str, int]:
    """Marks of the charts matching ``selector`` that the browser laid out with a non-zero size."""
    counts: dict[str, int] = page.evaluate(
        """(selector) => {
            const out = {charts: 0, marks: 0, paths: 0};
            for (const svg of document.querySelectorAll(selector)) {
                const box = svg.getBoundingClientRect();
                if (box.width > 0 && box.height > 0) out.charts += 1;
                for (const el of svg.querySelectorAll("rect.bar, path.slice, path.net-line")) {
                    const b = el.getBBox();
                    if (b.width > 0 && b.height > 0) {
                        out.marks += 1;
                        if (el.tagName === "path") out.paths += 1;
                    }
                }
            }
            return out;
        }""",
        selector,
    )
    return counts


def _figure(page: Page, asset: str, label: str) -> Any:
    return page.locator(f'[data-asset="{asset}"] .fig', has_text=label).locator(".money").first


def _minor(page: Page, asset: str, label: str) -> int:
    """The minor-unit integer a money figure carries on hover."""
    title = _figure(page, asset, label).get_attribute("title") or ""
    match = re.match(r"(-?[\d,]+) minor units", title)
    assert match, title
    return int(match.group(1).replace(",", ""))


def test_chain_endpoint_serves_the_committed_abi_selectors(stack: Stack) -> None:
    abi = json.loads((REPO / "chain" / "artifacts" / "AnchorRegistry.json").read_text())["abi"]
    declared = {
        item["name"]: f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        for item in abi
        if item["type"] in ("function", "error")
    }
    for name, signature in SIGNATURES.items():
        assert declared[name] == signature
        assert SELECTORS[name] == "0x" + function_signature_to_4byte_selector(signature).hex()
    info = http_json(stack.api_url + "/v1/chain")
    assert info["rpc_url"] == stack.node.url
    assert info["chain_id"] == 31337
    assert info["anchor_registry"] == stack.deployment.anchor_registry.address
    assert info["selectors"]["verifyCheckpoint"] == SELECTORS["verifyCheckpoint"]


def _merkle_vectors() -> dict[str, list[dict[str, Any]]]:
    """Every inclusion and consistency proof shape of small trees, from protocol/merkle/, each
    also with one byte flipped (which must not verify)."""
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(33)]
    log = MerkleLog()
    log.extend_hashes(leaves)
    inclusion, consistency = [], []
    for size in range(1, 34):
        for index in range(size):
            proof = [h.hex() for h in log.inclusion_proof(index, size)]
            inclusion.append({"leaf": leaves[index].hex(), "index": index, "size": size, "proof": proof})
    for size2 in range(1, 34):
        for size1 in range(1, size2 + 1):
            proof = [h.hex() for h in log.consistency_proof(size1, size2)]
            roots = {"root1": log.root(size1).hex(), "root2": log.root(size2).hex()}
            consistency.append({"size1": size1, "size2": size2, "proof": proof, **roots})
    return {"inclusion": inclusion, "consistency": consistency, "roots": [log.root(n).hex() for n in range(34)]}


def test_in_page_merkle_verification_matches_the_protocol(stack: Stack, page: Page) -> None:
    _open(page, stack.api_url, "auditor")
    outcome = page.evaluate(
        """async (v) => {
            const m = await import("/js/merkle.js");
            const b = (h) => m.hexToBytes(h);
            const flip = (hex) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);
            const bad = [];
            for (const c of v.inclusion) {
                const args = {leaf: b(c.leaf), index: c.index, size: c.size, proof: c.proof.map(b)};
                const root = m.bytesToHex(await m.rootFromInclusionProof(args));
                if (root !== v.roots[c.size]) bad.push(`inclusion ${c.index}/${c.size}`);
                if (c.proof.length) {
                    const forged = {...args, proof: [b(flip(c.proof[0])), ...args.proof.slice(1)]};
                    if (m.bytesToHex(await m.rootFromInclusionProof(forged)) === v.roots[c.size]) {
                        bad.push(`forged inclusion ${c.index}/${c.size} accepted`);
                    }
                }
            }
            for (const c of v.consistency) {
                const args = {
                    size1: c.size1, size2: c.size2, proof: c.proof.map(b), root1: b(c.root1), root2: b(c.root2),
                };
                try {
                    await m.verifyConsistency(args);
                } catch (e) {
                    bad.push(`consistency ${c.size1}->${c.size2}: ${e.message}`);
                }
                if (c.proof.length) {
                    try {
                        await m.verifyConsistency({...args, proof: [b(flip(c.proof[0])), ...args.proof.slice(1)]});
                        bad.push(`forged consistency ${c.size1}->${c.size2} accepted`);
                    } catch (e) { if (!(e instanceof m.ProofError)) bad.push(`wrong error ${e}`); }
                }
            }
            return {bad, inclusion: v.inclusion.length, consistency: v.consistency.length};
        }""",
        _merkle_vectors(),
    )
    assert outcome["bad"] == []
    assert outcome["inclusion"] == 33 * 34 // 2
    assert outcome["consistency"] == 33 * 34 // 2


def test_investor_view_turns_pending_into_attested_live(stack: Stack, page: Page) -> None:
    assert "attestor" not in stack.processes, "this test watches the attestor start: run it before the others"
    _open(page, stack.api_url, "investor")
    page.wait_for_selector('[data-asset="kowloon-hub"] svg[data-chart="cashflow"]')
    assert page.get_attribute('[data-testid="latest-checkpoint"]', "data-epoch") == ""
    for asset in ("hk-rooftops", "kowloon-hub", "hydro-pod"):
        assert _minor(page, asset, "Net, attested") == 0
    assert _minor(page, "kowloon-hub", "Pending net") > 0
    pending = _drawn(page, 'svg[data-chart="cashflow"]')
    assert pending["charts"] == 3
    assert page.locator("rect.bar.pending").count() > 0
    assert page.locator("rect.bar.attested").count() == 0
    _shot(page, "investor-pending")

    stack.start_attestor()  # the page is not reloaded: polling must bring the anchors in
    page.wait_for_function(
        "() => document.querySelector('[data-testid=latest-checkpoint]')?.dataset.epoch !== ''", timeout=TIMEOUT_MS
    )
    wait_for(lambda: unanchored_readings(stack.db_url) == 0, timeout_s=60, what="every reading anchored")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.pending-col .money')].every((m) => m.title.startsWith('0 minor'))",
        timeout=TIMEOUT_MS,
    )
    assert _minor(page, "kowloon-hub", "Net, attested") > 0
    assert _minor(page, "kowloon-hub", "Pending net") == 0
    attested = _drawn(page, 'svg[data-chart="cashflow"]')
    assert attested["marks"] >= 6
    assert attested["paths"] >= 3, "each asset's net line"
    assert page.locator("rect.bar.attested").count() > 0
    mix = _drawn(page, 'svg[data-chart="donut"]')
    assert mix["paths"] == 3, "one slice per asset class"
    money = _figure(page, "kowloon-hub", "Net, attested")
    assert re.fullmatch(r"HK\$[\d,]+\.\d\d", money.inner_text()), money.inner_text()
    anchoring = page.locator('[data-asset="kowloon-hub"] .anchoring').inner_text()
    assert "anchored" in anchoring
    assert "0x" in anchoring
    _shot(page, "investor")


def test_fleet_view(anchored: Stack, page: Page) -> None:
    _open(page, anchored.api_url, "fleet")
    page.wait_for_selector(".devices tbody tr")
    assert page.locator(".devices tbody tr").count() == 7
    online = page.locator('[data-testid="devices-online"] strong').inner_text()
    assert re.fullmatch(r"7\s*/\s*7", online), online
    assert _drawn(page, 'svg[data-chart="columns"]')["marks"] > 0
    reasons = http_json(anchored.api_url + "/v1/quarantine/reasons")
    assert reasons["total"] > 0, "the simulator injected faults"
    assert _drawn(page, 'svg[data-chart="hbars"]')["marks"] == len(reasons["reasons"])
    loss = http_json(anchored.api_url + "/v1/fleet/health")["loss"]
    assert page.locator("[data-loss]").count() == len(loss)
    if not loss:  # every device delivered: the card says so rather than staying blank
        assert "None" in page.locator('[data-testid="loss"]').inner_text()
    _shot(page, "fleet")


def test_auditor_view_checks_consistency_and_the_chain_in_the_page(anchored: Stack, page: Page) -> None:
    epochs = http_json(anchored.api_url + "/v1/epochs?status=anchored&limit=100")["items"]
    assert len(epochs) >= 3
    _open(page, anchored.api_url, "auditor")
    page.wait_for_selector(".checkpoints-table tbody tr")
    page.wait_for_function(
        f"() => document.querySelectorAll('.consistency-cell .check-chip.pass').length === {len(epochs)}"
        f" && document.querySelectorAll('.chain-cell .check-chip.pass').length === {len(epochs)}",
        timeout=TIMEOUT_MS,
    )
    assert page.locator(".check-chip.fail").count() == 0
    summary = page.locator('[data-testid="consistency-summary"] strong').inner_text()
    assert summary.replace(" ", "") == f"{len(epochs)}/{len(epochs)}"
    link = page.locator(".checkpoints-table a", has_text="bundle").first
    bundle = http_json(anchored.api_url + (link.get_attribute("href") or ""))
    assert bundle["format"] == "assetproof.bundle"
    _shot(page, "auditor")


def _verdict(page: Page) -> tuple[str, str, dict[str, str]]:
    verdict = page.wait_for_selector(".result .verdict")
    assert verdict is not None
    checks = {
        row.get_attribute("data-check") or "": row.get_attribute("data-status") or ""
        for row in page.query_selector_all(".result .check-row")
    }
    return verdict.get_attribute("data-verdict") or "", verdict.get_attribute("data-failed") or "", checks


VERIFY_CHECKS = ("message", "leaf", "inclusion", "checkpoint", "metadata", "device", "signature", "key")


def test_verify_genuine_readings_in_the_browser(anchored: Stack, page: Page) -> None:
    # The chain pinned in the link: the page reads the key, checkpoint and metaHash from it.
    _open(page, anchored.api_url, "verify", pin=anchored)
    # An es256 (ECDSA P-256) reading, picked from the recent readings list.
    page.locator('.recent button[data-device^="evc-"]').first.click()
    title, failed, checks = _verdict(page)
    assert (title, failed) == ("VERIFIED", ""), page.locator(".result").inner_text()
    assert checks == dict.fromkeys(VERIFY_CHECKS, "pass")
    signature = page.locator('[data-check="signature"]').inner_text()
    assert "ECDSA P-256 signature valid under the DeviceRegistry's key" in signature
    assert "verifyCheckpoint true" in page.locator('[data-check="checkpoint"]').inner_text()
    assert "acceptsReading: Valid" in page.locator('[data-check="key"]').inner_text()
    _shot(page, "verify-es256")

    # An Ed25519 reading, named by its log index in the form.
    solar = http_json(f"{anchored.api_url}/v1/readings?device=sol-hk-rooftops-0002&limit=20")["items"][-1]
    log_index = str(solar["log_index"])
    page.fill('input[name="log"]', log_index)
    page.click(".verify-form button[type=submit]")
    page.wait_for_selector(f'.result .verdict-title:has-text("log index {log_index}")')
    title, failed, checks = _verdict(page)
    assert (title, failed) == ("VERIFIED", ""), page.locator(".result").inner_text()
    assert set(checks.values()) == {"pass"}
    signature = page.locator('[data-check="signature"]').inner_text()
    assert "Ed25519 signature valid under the DeviceRegistry's key" in signature
    _shot(page, "verify-ed25519")


def _tamper(db_path: Path, device: str, seq: int) -> None:
    """Change one digit of a metric in the stored message, as a compromised database would."""
    with sqlite3.connect(db_path) as db:
        (raw,) = db.execute("SELECT raw FROM reading WHERE device_id = ? AND seq = ?", (device, seq)).fetchone()
        match = re.search(rb'"energy_wh":(\d+)', bytes(raw))
        assert match is not None
        digits = match.group(1)
        forged = digits[:-1] + str((int(digits[-1:]) + 1) % 10).encode()
        tampered = bytes(raw)[: match.start(1)] + forged + bytes(raw)[match.end(1) :]
        db.execute("UPDATE reading SET raw = ? WHERE device_id = ? AND seq = ?", (tampered, device, seq))


def test_verify_reports_a_reading_tampered_after_anchoring(anchored: Stack, page: Page) -> None:
    device, seq = TAMPERED
    reading = http_json(f"{anchored.api_url}/v1/devices/{device}/readings/{seq}")
    assert reading["epoch_status"] == "anchored"
    _tamper(anchored.database, device, seq)
    _open(page, anchored.api_url, "verify", pin=anchored)
    page.fill('input[name="device"]', device)
    page.fill('input[name="seq"]', str(seq))
    page.click(".verify-form button[type=submit]")
    title, failed, checks = _verdict(page)
    assert title == "FAILED"
    assert set(failed.split()) == {"signature", "leaf", "inclusion"}
    assert checks["signature"] == checks["leaf"] == checks["inclusion"] == "fail"
    assert checks["checkpoint"] == "pass", "the checkpoint itself is the anchored one"
    why = page.locator(".result .why").inner_text()
    assert "signature does not verify" in why
    assert "stored message changed after it was logged" in why
    assert "not the leaf at index" in why
    _shot(page, "verify-tampered")


def test_without_a_public_rpc_the_page_says_the_root_came_through_the_api(anchored: Stack, page: Page) -> None:
    # What the dashboard sees on an in-process eth-tester chain: no endpoint a browser can call.
    base = anchored.start_api("api-no-rpc", public_rpc_url=None)
    assert http_json(base + "/v1/chain")["rpc_url"] is None
    _open(page, base, "verify/log/5")
    title, failed, checks = _verdict(page)
    # Nothing failed, but the root and the key are the API's: never VERIFIED.
    assert (title, failed) == ("NOT VERIFIED", "")
    assert checks["checkpoint"] == checks["signature"] == "warn"
    assert checks["device"] == checks["key"] == "skip"
    notice = page.locator('[data-testid="root-source"]').inner_text()
    assert "Nothing was read from the chain: no JSON-RPC URL" in notice
    signature = page.locator('[data-check="signature"]').inner_text()
    assert "that key is from the API, not checked against the chain" in signature
    assert "no public RPC" in page.locator("#chain-badge").inner_text()
    _shot(page, "verify-no-rpc")
