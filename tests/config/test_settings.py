"""The one settings object: sources and their order, refusals, production mode, the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.app import create_app
from cli.common import parse_broker
from cli.main import app
from config import ANVIL_DEV_KEY, Settings, SettingsError, load_settings
from config.settings import ANVIL_DEV_KEYS, ANVIL_MNEMONIC
from protocol.errors import AssetproofError

ROOT = Path(__file__).resolve().parents[2]
KEY = "0x" + "11" * 32
TOKEN = "a-long-random-admin-token-for-tests"


def test_defaults_need_no_environment() -> None:
    settings = load_settings(environ={})
    assert settings.mode == "development"
    assert settings.database_url == "sqlite:///var/assetproof.db"
    assert settings.broker_address() == ("127.0.0.1", 1883)
    assert settings.require_chain_key() == ANVIL_DEV_KEY
    assert settings.require_attestor_key() == ANVIL_DEV_KEY
    assert settings.require_admin_token() is None


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "assetproof.env"
    file.write_text(
        "# a comment\nASSETPROOF_EPOCH_SECONDS=5\nASSETPROOF_BROKER=mqtt.internal:8883\nassetproof_api_port=9000\n"
    )
    settings = load_settings(file=file, environ={"ASSETPROOF_BROKER": "broker:1884"})
    assert settings.epoch_seconds == 5.0
    assert settings.broker == "broker:1884"  # the environment beats the file
    assert settings.api_port == 9000  # names are case-insensitive, as environment variables on Windows
    flagged = load_settings(file=file, environ={"ASSETPROOF_BROKER": "broker:1884"}, broker="cli:1")
    assert flagged.broker == "cli:1"


def test_file_named_by_environment(tmp_path: Path) -> None:
    file = tmp_path / "prod.env"
    file.write_text(f"ASSETPROOF_MODE=production\nASSETPROOF_ATTESTOR_KEY={KEY}\n")
    settings = load_settings(environ={"ASSETPROOF_SETTINGS_FILE": str(file)})
    assert settings.production
    assert settings.require_attestor_key() == KEY


def test_empty_value_means_unset() -> None:
    # docker-compose passes `VAR=` for a variable it could not fill: that is "unset", not "".
    assert load_settings(environ={"ASSETPROOF_ADMIN_TOKEN": ""}).admin_token is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"ASSETPROOF_DATABASE": "x"},
            "ASSETPROOF_DATABASE in the environment is not a setting (did you mean ASSETPROOF_DATABASE_URL?)",
        ),
        ({"ASSETPROOF_BROKER": "localhost"}, "ASSETPROOF_BROKER: expected HOST:PORT, got 'localhost'"),
        ({"ASSETPROOF_API_PORT": "70000"}, "ASSETPROOF_API_PORT: Input should be less than or equal to 65535"),
        ({"ASSETPROOF_EPOCH_SECONDS": "soon"}, "ASSETPROOF_EPOCH_SECONDS: Input should be a valid number"),
        ({"ASSETPROOF_MODE": "prod"}, "ASSETPROOF_MODE: Input should be 'development' or 'production'"),
        (
            {"ASSETPROOF_ATTESTOR_KEY": "0x1234"},
            "ASSETPROOF_ATTESTOR_KEY: expected a private key as 0x and 64 hex digits",
        ),
    ],
)
def test_bad_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert message in str(caught.value)


def test_not_settings_are_left_alone() -> None:
    load_settings(environ={"ASSETPROOF_ANVIL": "/usr/bin/anvil", "ASSETPROOF_TEST_PG": "x", "PATH": "/bin"})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(file=tmp_path / "missing.env", environ={})
    typo = tmp_path / "typo.env"
    typo.write_text("ASSETPROOF_EPOCH_SECOND=5\n")
    with pytest.raises(SettingsError, match="did you mean ASSETPROOF_EPOCH_SECONDS"):
        load_settings(file=typo, environ={})
    stray = tmp_path / "stray.env"
    stray.write_text("DATABASE_URL=postgresql://x\n")
    with pytest.raises(SettingsError, match="DATABASE_URL is not an ASSETPROOF_"):
        load_settings(file=stray, environ={})


def test_production_has_no_default_secrets() -> None:
    production = load_settings(environ={"ASSETPROOF_MODE": "production"})
    with pytest.raises(SettingsError, match="ASSETPROOF_ATTESTOR_KEY is required in production"):
        production.require_attestor_key()
    with pytest.raises(SettingsError, match="ASSETPROOF_CHAIN_KEY is required in production"):
        production.require_chain_key()
    with pytest.raises(SettingsError, match="ASSETPROOF_ADMIN_TOKEN is required in production"):
        production.require_admin_token()
    # The attestor's key does not fall back to the chain key in production either.
    only_chain = load_settings(environ={"ASSETPROOF_MODE": "production", "ASSETPROOF_CHAIN_KEY": KEY})
    with pytest.raises(SettingsError, match="ASSETPROOF_ATTESTOR_KEY"):
        only_chain.require_attestor_key()
    # The API takes the same object and refuses to be built without its token.
    with pytest.raises(SettingsError, match="ASSETPROOF_ADMIN_TOKEN is required"):
        create_app(production)
    with_token = load_settings(environ={"ASSETPROOF_MODE": "production", "ASSETPROOF_ADMIN_TOKEN": TOKEN})
    assert with_token.require_admin_token() == TOKEN


def test_settings_errors_are_in_the_one_tree() -> None:
    assert issubclass(SettingsError, AssetproofError)


@pytest.mark.parametrize("token", ["changethis", "CHANGEME", "token", "x" * 15])
def test_a_weak_admin_token_is_refused_wherever_settings_are_loaded(
    token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SettingsError, match="ASSETPROOF_ADMIN_TOKEN: must be a random secret of at least 16"):
        load_settings(environ={"ASSETPROOF_ADMIN_TOKEN": token})
    file = tmp_path / "weak.env"
    file.write_text(f"ASSETPROOF_ADMIN_TOKEN={token}\n")
    with pytest.raises(SettingsError, match="ASSETPROOF_ADMIN_TOKEN"):
        load_settings(file=file, environ={})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["devices", "list"], env={"ASSETPROOF_ADMIN_TOKEN": token})
    assert result.exit_code == 2
    assert "ASSETPROOF_ADMIN_TOKEN: must be a random secret" in result.output


@pytest.mark.parametrize(
    ("value", "parts"), [("127.0.0.1:1883", ("127.0.0.1", 1883)), ("mqtt.internal:8883", ("mqtt.internal", 8883))]
)
def test_broker_flag_and_setting_read_alike(value: str, parts: tuple[str, int]) -> None:
    assert load_settings(environ={"ASSETPROOF_BROKER": value}).broker_address() == parts
    assert parse_broker(value) == parts


@pytest.mark.parametrize("value", ["localhost", ":1883", "host:", "host:port", "a b:1", "host:123456"])
def test_broker_flag_and_setting_refuse_alike(value: str) -> None:
    with pytest.raises(SettingsError, match="expected HOST:PORT"):
        load_settings(environ={"ASSETPROOF_BROKER": value})
    with pytest.raises(typer.BadParameter, match="expected HOST:PORT"):
        parse_broker(value)


def test_secrets_do_not_print() -> None:
    settings = load_settings(environ={"ASSETPROOF_ATTESTOR_KEY": KEY, "ASSETPROOF_ADMIN_TOKEN": TOKEN})
    assert KEY not in repr(settings)
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["attestor"], "ASSETPROOF_ATTESTOR_KEY"),
        (["api", "--port", "1"], "ASSETPROOF_ADMIN_TOKEN"),
        (["chain", "deploy"], "ASSETPROOF_CHAIN_KEY"),
    ],
)
def test_services_refuse_to_start_in_production_without_secrets(
    args: list[str], missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args, env={"ASSETPROOF_MODE": "production"})
    assert result.exit_code == 2, result.output
    assert f"error: {missing} is required in production mode" in result.output
    assert not (tmp_path / "var").exists()  # refused before touching anything


def test_cli_reads_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "from-file.db"
    file = tmp_path / "assetproof.env"
    file.write_text(f"ASSETPROOF_DATABASE_URL=sqlite:///{db}\n")
    result = CliRunner().invoke(app, ["--settings", str(file), "devices", "list", "--json"], env={})
    assert result.exit_code == 0, result.output
    assert db.exists()
    other = tmp_path / "from-flag.db"
    result = CliRunner().invoke(
        app, ["--settings", str(file), "devices", "list", "--json", "--database", f"sqlite:///{other}"]
    )
    assert result.exit_code == 0, result.output
    assert other.exists()


def test_cli_names_a_bad_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["devices", "list"], env={"ASSETPROOF_DATABSE_URL": "sqlite:///x.db"})
    assert result.exit_code == 2
    assert "ASSETPROOF_DATABSE_URL in the environment is not a setting (did you mean ASSETPROOF_DATABASE_URL?)" in (
        result.output
    )
    result = CliRunner().invoke(app, ["--settings", "nope.env", "devices", "list"])
    assert result.exit_code == 2
    assert "settings file nope.env does not exist" in result.output


def test_readme_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(ASSETPROOF_[A-Z_]+)` \|", readme, flags=re.M))
    assert rows >= set(Settings.variables())
    assert rows - set(Settings.variables()) <= {"ASSETPROOF_SETTINGS_FILE", "ASSETPROOF_ANVIL"}


# --- anvil's published keys are refused in production -----------------------------------------


def test_the_anvil_keys_are_the_default_mnemonics_first_ten_accounts() -> None:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    derived = [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex() for i in range(10)]
    assert ["0x" + k.removeprefix("0x") for k in derived] == list(ANVIL_DEV_KEYS)
    # The well-known first and last addresses anvil prints at start.
    assert Account.from_key(ANVIL_DEV_KEYS[0]).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert Account.from_key(ANVIL_DEV_KEYS[9]).address == "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
    assert ANVIL_DEV_KEYS[0] == ANVIL_DEV_KEY


@pytest.mark.parametrize("index", range(10))
@pytest.mark.parametrize("setting", ["ASSETPROOF_CHAIN_KEY", "ASSETPROOF_ATTESTOR_KEY"])
def test_production_refuses_every_anvil_key_and_names_the_setting(index: int, setting: str) -> None:
    key = ANVIL_DEV_KEYS[index]
    env = {"ASSETPROOF_MODE": "production", "ASSETPROOF_CHAIN_KEY": KEY, "ASSETPROOF_ATTESTOR_KEY": KEY, setting: key}
    with pytest.raises(
        SettingsError, match=f"^{setting} is anvil's publicly known development key \\(account {index} "
    ):
        load_settings(environ=env)
    # Hex case changes nothing.
    with pytest.raises(SettingsError, match=setting):
        load_settings(environ={**env, setting: "0x" + key[2:].upper()})
    # Development mode runs on them: that is what they are for.
    assert load_settings(environ={**env, "ASSETPROOF_MODE": "development"}).require_chain_key() in {KEY, key}


def test_production_accepts_keys_of_its_own() -> None:
    settings = load_settings(
        environ={
            "ASSETPROOF_MODE": "production",
            "ASSETPROOF_CHAIN_KEY": KEY,
            "ASSETPROOF_ATTESTOR_KEY": "0x" + "22" * 32,
        }
    )
    assert settings.require_chain_key() == KEY
    assert settings.require_attestor_key() == "0x" + "22" * 32


def test_a_service_refuses_to_start_with_an_anvil_key_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"ASSETPROOF_MODE": "production", "ASSETPROOF_ATTESTOR_KEY": ANVIL_DEV_KEYS[1], "ASSETPROOF_CHAIN_KEY": KEY}
    result = CliRunner().invoke(app, ["attestor"], env=env)
    assert result.exit_code == 2, result.output
    assert "error: ASSETPROOF_ATTESTOR_KEY is anvil's publicly known development key (account 1" in result.output
    assert not (tmp_path / "var").exists()  # refused before touching anything
