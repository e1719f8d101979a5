"""``vigie inventory fetch`` against a fake WSO2 that checks every request against WSO2's
Publisher, DevPortal and Admin specs and serves spec-valid, paged answers (tests.support.fake_apim).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from tests.conftest import CONFORMANCE, VIGIE
from tests.ops.certs import CA
from tests.support.fake_apim import FakeApim, Platform, generate_platform
from tests.support.wso2_spec import AdminSpec, Spec
from vigie.cli.main import main
from vigie.errors import InputError
from vigie.sources import wso2_api
from vigie.sources.inventory import (
    Api,
    Application,
    Inventory,
    Subscription,
    load_inventory,
    write_inventory,
)
from vigie.sources.wso2_inventory import fetch

SECRET = "s3cret-client-Zq8"


@pytest.fixture(scope="module")
def specs() -> list[Spec]:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    return [
        Spec(CONFORMANCE / "publisher-v4.yaml"),
        Spec(CONFORMANCE / "devportal-v3.yaml"),
        AdminSpec(CONFORMANCE / "admin-v4.yaml"),
    ]


@pytest.fixture(scope="module")
def small() -> Platform:
    return generate_platform(apis=60, subscriptions=250, apps=40)


def start(specs: list[Spec], platform: Platform, **kw: object) -> FakeApim:
    return FakeApim(specs, platform, client_secret=SECRET, **kw).start()  # type: ignore[arg-type]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "client.secret"
    p.write_text(SECRET + "\n")
    return p


def run(
    fake: FakeApim, out: Path, secret_file: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    cmd = [*VIGIE, "inventory", "fetch", "--wso2", fake.url, "--client-id", fake.client_id,
           "--client-secret-file", str(secret_file), "--output", str(out), *args]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in res.stderr, res.stderr
    assert SECRET not in res.stdout + res.stderr
    return res


def assert_holds(inv: Inventory, platform: Platform, tenant: str) -> None:
    """The inventory is exactly the platform: every API, subscription and application."""
    assert inv.tenant == tenant
    assert sorted((a.id, a.name, a.version, a.context, a.lifecycle, a.environments)
                  for a in inv.apis) == sorted(
        (a.id, a.name, a.version, a.gateway_context, a.lifecycle, tuple(sorted(a.environments)))
        for a in platform.apis
    )  # fmt: skip
    assert sorted((s.application_id, s.api, s.api_version, s.tier) for s in inv.subscriptions) == (
        sorted((s.app.id, s.api.name, s.api.version, s.tier) for s in platform.subs)
    )
    assert sorted((a.id, a.name, a.owner, a.channel) for a in inv.applications) == sorted(
        (a.id, a.name, a.owner, a.expected_channel) for a in platform.apps
    )


def offsets(fake: FakeApim, path: str, **match: str) -> list[int]:
    out = []
    for method, raw, _ in fake.seen:
        u = urlsplit(raw)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if method == "GET" and u.path == path and all(q.get(k) == v for k, v in match.items()):
            assert q["limit"] == "25"
            out.append(int(q["offset"]))
    return out


@pytest.mark.slow
def test_the_600_api_platform_is_fetched_exactly_every_page_of_it(
    specs: list[Spec], tmp_path: Path, secret_file: Path
) -> None:
    platform = generate_platform()  # 600 APIs, 2,500 subscriptions, 400 applications
    assert (len(platform.apis), len(platform.subs)) == (600, 2500)
    fake = start(specs, platform)
    try:
        out = tmp_path / "inventory.json"
        res = run(fake, out, secret_file)
        assert res.returncode == 0, res.stderr
        assert fake.violations == []
        assert_holds(load_inventory(out), platform, "carbon.super")
        assert "600 APIs, 2500 subscriptions, 400 applications" in res.stderr
        # every page, once, in order
        assert offsets(fake, "/api/am/publisher/v4/apis") == list(range(0, 600, 25))
        assert offsets(fake, "/api/am/admin/v4/applications") == list(range(0, 400, 25))
        popular = platform.apis[0]
        n = sum(s.api is popular for s in platform.subs)
        assert n > 100  # several pages of subscriptions for one API
        pages = offsets(fake, "/api/am/publisher/v4/subscriptions", apiId=popular.id)
        assert pages == list(range(0, n, 25))
        # the token and no tenant header on every REST call (the fake refuses anything else)
        rest = [h for _, raw, h in fake.seen if raw.startswith("/api/am/")]
        assert len(rest) > 1600
        assert all(h["authorization"].startswith("Bearer ") for h in rest)
        assert all("x-wso2-tenant" not in h for h in rest)
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_401_names_the_call_in_one_line(
    specs: list[Spec], small: Platform, tmp_path: Path, secret_file: Path
) -> None:
    fake = start(specs, small, tokens_valid_for=1)  # the token stops working after one call
    try:
        out = tmp_path / "inventory.json"
        res = run(fake, out, secret_file)
        assert res.returncode == 4
        assert res.stderr.strip().splitlines() == [
            "vigie: GET /api/am/publisher/v4/apis?offset=25&limit=25: 401 Unauthorized "
            "(Invalid Credentials. Make sure you have provided the correct security credentials)"
        ]
        assert not out.exists()
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_timeout_names_the_call_and_writes_nothing(
    specs: list[Spec], small: Platform, tmp_path: Path, secret_file: Path
) -> None:
    fake = start(specs, small, slow={"/api/am/admin/v4/applications": 5.0})
    try:
        out = tmp_path / "inventory.json"
        out.write_text('{"apis": []}')  # the last good inventory stays
        res = run(fake, out, secret_file, "--timeout", "0.5")
        assert res.returncode == 5
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(
            f"vigie: GET {fake.url}/api/am/admin/v4/applications?offset=0&limit=25: no answer "
            "in 0.5 s"
        )
        assert out.read_text() == '{"apis": []}'
        assert not list(tmp_path.glob(".inventory.json*"))
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_bad_client_secret_is_refused_by_the_token_endpoint(
    specs: list[Spec], small: Platform, tmp_path: Path
) -> None:
    fake = start(specs, small)
    try:
        wrong = tmp_path / "wrong.secret"
        wrong.write_text("not-the-secret")
        res = run(fake, tmp_path / "inventory.json", wrong)
        assert res.returncode == 4
        assert res.stderr.strip() == (
            "vigie: POST /oauth2/token (client_credentials grant, client 'vigie-inventory'): "
            "401 Unauthorized (Client Authentication failed.)"
        )
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_tenant_is_sent_on_every_call_and_recorded(
    specs: list[Spec], small: Platform, tmp_path: Path, secret_file: Path
) -> None:
    fake = start(specs, small, tenant="bank.example")
    try:
        out = tmp_path / "inventory.json"
        res = run(fake, out, secret_file, "--tenant", "bank.example")
        assert res.returncode == 0, res.stderr
        assert fake.violations == []
        assert_holds(load_inventory(out), small, "bank.example")
        rest = [(raw, h) for _, raw, h in fake.seen if raw.startswith("/api/am/")]
        assert rest and all(h["x-wso2-tenant"] == "bank.example" for _, h in rest)
        assert all("tenantDomain=bank.example" in raw for raw, _ in rest
                   if urlsplit(raw).path == "/api/am/admin/v4/applications")  # fmt: skip
        # without --tenant, the tenant's WSO2 answers 400 (the fake: no X-WSO2-Tenant)
        res = run(fake, tmp_path / "other.json", secret_file)
        assert res.returncode == 4
        assert "GET /api/am/publisher/v4/apis?offset=0&limit=25: 400 Bad Request" in res.stderr
    finally:
        fake.stop()


@pytest.mark.slow
def test_tls_checks_wso2s_certificate_unless_told_not_to(
    specs: list[Spec], small: Platform, tmp_path: Path, secret_file: Path
) -> None:
    ca = CA(tmp_path / "pki", "wso2-ca")
    pair = ca.issue("localhost", server=True)
    fake = FakeApim(specs, small, client_secret=SECRET).start(tls=(pair.cert, pair.key))
    try:
        assert fake.url.startswith("https://")
        out = tmp_path / "inventory.json"
        res = run(fake, out, secret_file)  # the system's CAs do not know this one
        assert res.returncode == 5
        assert "POST " + fake.url + "/oauth2/token: cannot connect" in res.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in res.stderr
        res = run(fake, out, secret_file, "--ca-file", str(ca.pem))
        assert res.returncode == 0, res.stderr
        assert "warning" not in res.stderr
        assert_holds(load_inventory(out), small, "carbon.super")
        res = run(fake, out, secret_file, "--insecure")
        assert res.returncode == 0, res.stderr
        assert "warning: --insecure: WSO2's certificate is NOT verified" in res.stderr
        assert fake.violations == []
    finally:
        fake.stop()


def conn(fake: FakeApim, **kw: object) -> wso2_api.Connection:
    login = wso2_api.Login(fake.client_id, SECRET)
    return wso2_api.Connection(fake.url, login, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_channels_from_a_named_attribute_or_else_the_gateway_environment(
    specs: list[Spec],
) -> None:
    platform = generate_platform(apis=60, subscriptions=250, apps=40, channel_attribute="canal")
    fake = start(specs, platform)
    try:
        got = fetch(wso2_api.Wso2Client(conn(fake)), "canal")
        assert fake.violations == []
        assert_holds(got.inventory, platform, "carbon.super")
        kinds = [a.expected_channel for a in platform.apps]
        assert got.from_attribute == 14 and got.from_environment == 13
        assert len(got.unmapped) == 13 == kinds.count("")
        # with the default attribute name, the attribute is not read: environment or nothing
        other = fetch(wso2_api.Wso2Client(conn(fake)))
        assert other.from_attribute == 0
        by_id = {a.id: a.channel for a in other.inventory.applications}
        for a in platform.apps[1::3]:  # subscribed to one environment only
            assert by_id[a.id] == a.expected_channel
    finally:
        fake.stop()


@pytest.mark.slow
def test_dcr_then_the_password_grant(specs: list[Spec], small: Platform) -> None:
    fake = start(specs, small)
    try:
        login = wso2_api.Login(username="admin", password="admin-pass")
        got = fetch(wso2_api.Wso2Client(wso2_api.Connection(fake.url, login)))
        assert fake.violations == []
        assert_holds(got.inventory, small, "carbon.super")
        assert len(fake.clients) == 2  # the given one and the one vigie registered
        bad = wso2_api.Login(username="admin", password="wrong")
        with pytest.raises(wso2_api.Wso2Error, match=r"^POST /client-registration/v0.17/"
                           r"register as 'admin': 401 Unauthorized \(Unauthorized\)$"):  # fmt: skip
            fetch(wso2_api.Wso2Client(wso2_api.Connection(fake.url, bad)))
    finally:
        fake.stop()


@pytest.mark.slow
def test_older_apim_versions_use_their_rest_api_versions(
    specs: list[Spec], small: Platform
) -> None:
    assert wso2_api.api_versions("4.0") == ("v2", "v2", "v2")
    assert wso2_api.api_versions("4.1.0") == ("v3", "v2", "v3")
    assert wso2_api.api_versions("4.2") == ("v4", "v3", "v4")
    assert wso2_api.api_versions("4.6") == ("v4", "v3", "v4")
    with pytest.raises(ValueError, match=r"expected 4\.0"):
        wso2_api.api_versions("3.2")
    aliases = {
        "/api/am/publisher/v3": "/api/am/publisher/v4",
        "/api/am/admin/v3": "/api/am/admin/v4",
    }
    fake = start(specs, small, aliases=aliases)
    try:
        got = fetch(wso2_api.Wso2Client(conn(fake, apim_version="4.1")))
        assert fake.violations == []
        assert_holds(got.inventory, small, "carbon.super")
        rest = {urlsplit(raw).path.split("/")[3:5][1] for _, raw, _ in fake.seen
                if raw.startswith("/api/am/")}  # fmt: skip
        assert rest == {"v3"}
    finally:
        fake.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((200, {"count": 1}), "GET /api/am/admin/v4/applications?offset=0&limit=25: the answer "
         "has no list of objects"),
        ((200, {"list": [{"name": "x"}]}), "GET /api/am/admin/v4/applications: an item has no "
         "'applicationId'"),
        ((200, b"<html>maintenance</html>"), "GET /api/am/admin/v4/applications?offset=0&"
         "limit=25: the answer is not JSON (<html>maintenance</html>)"),
        ((502, b"<html>\n<b>Bad gateway</b></html>"), "GET /api/am/admin/v4/applications?"
         "offset=0&limit=25: 502 Bad Gateway (<html> <b>Bad gateway</b></html>)"),
    ],
)  # fmt: skip
def test_a_broken_answer_is_one_line_naming_the_call(
    specs: list[Spec], small: Platform, answer: tuple[int, object], message: str
) -> None:
    fake = start(specs, small, canned={"/api/am/admin/v4/applications": answer})
    try:
        with pytest.raises(wso2_api.Wso2Error) as err:
            fetch(wso2_api.Wso2Client(conn(fake)))
        assert str(err.value) == message
        assert err.value.exit_code == 4
    finally:
        fake.stop()


def test_no_answer_at_all_is_unreachable() -> None:
    login = wso2_api.Login("c", "s")
    client = wso2_api.Wso2Client(wso2_api.Connection("http://127.0.0.1:9", login, timeout=2))
    with pytest.raises(wso2_api.Wso2Unreachable, match=r"^POST http://127.0.0.1:9/oauth2/token: "
                       "cannot connect"):  # fmt: skip
        client.token()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--apim-version", "3.2"], "APIM version '3.2': expected 4.0, 4.1, 4.2, ... 4.6"),
        (["--ca-file", "/nonexistent/ca.pem"], "CA file /nonexistent/ca.pem: No such file or "
         "directory"),
        (["--wso2", "ftp://apim"], "'ftp://apim' is not an http(s) URL"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, secret_file: Path, args: list[str], message: str
) -> None:
    base = ["inventory", "fetch", "--wso2", "http://127.0.0.1:9", "--client-id", "c",
            "--client-secret-file", str(secret_file), "-o", str(tmp_path / "i.json")]  # fmt: skip
    res = CliRunner().invoke(main, base + args)
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"vigie: {message}"


def test_credentials_come_from_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no WSO2 credentials"):
        wso2_api.login("", "", "", "")
    with pytest.raises(InputError, match=r"client secret file .*missing"):
        wso2_api.login("c", str(tmp_path / "missing"), "", "")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InputError, match=r"password file .* is empty"):
        wso2_api.login("", "", "admin", str(tmp_path / "empty"))
    (tmp_path / "pw").write_text("pw\n")
    got = wso2_api.login("", "", "admin", str(tmp_path / "pw"))
    assert (got.username, got.password) == ("admin", "pw")
    assert "pw" not in repr(got)


def test_the_file_format_round_trips_with_what_wso2_adds(tmp_path: Path, small: Platform) -> None:
    path = tmp_path / "inv.json"
    a = small.apis[9]  # deployed to two environments
    api = Api(a.name, a.version, a.gateway_context, a.id, a.lifecycle, a.environments)
    apps = [Application("app-1", "one", "bob", "web")]
    inv = Inventory(apps, [Subscription("app-1", a.name, a.version, "Gold")], [api], "bank.example")
    write_inventory(inv, path)
    assert load_inventory(path) == inv
    assert len(api.environments) == 2
    path.write_text('{"apis": [{"name": "a", "version": "v1", "environments": "Default"}]}')
    with pytest.raises(InputError, match=r"apis\[0\]: 'environments' must be a list of strings"):
        load_inventory(path)
