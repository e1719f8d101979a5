"""``vigie check-config`` checks what ``inventory_source = "wso2"`` needs before serve starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vigie.cli.main import main
from vigie.settings import check_file


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "vigie.toml"
    p.write_text('inventory_source = "wso2"\n' + body)
    return p


def test_no_url_and_no_credentials_are_named(tmp_path: Path) -> None:
    problems = check_file(_write(tmp_path, ""))
    assert any("needs wso2_url" in p for p in problems), problems
    assert any("no WSO2 credentials" in p for p in problems), problems


def test_a_bad_url_version_secret_and_ca_are_named(tmp_path: Path) -> None:
    body = (
        'wso2_url = "apim:9443"\nwso2_apim_version = "3.2"\nwso2_client_id = "c"\n'
        f'wso2_client_secret_file = "{tmp_path}/nope"\nwso2_ca_file = "{tmp_path}/ca.pem"\n'
    )
    problems = check_file(_write(tmp_path, body))
    for needle in ("is not an http(s) URL", "wso2_apim_version", "client secret file",
                   "wso2_ca_file"):  # fmt: skip
        assert any(needle in p for p in problems), (needle, problems)
    r = CliRunner().invoke(main, ["check-config", str(tmp_path / "vigie.toml")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output


def test_good_wso2_settings_have_no_problem(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    body = (
        'wso2_url = "https://apim:9443"\nwso2_client_id = "c"\n'
        f'wso2_client_secret_file = "{secret}"\n'
    )
    problems = check_file(_write(tmp_path, body))
    assert not [p for p in problems if "wso2" in p.lower()], problems
