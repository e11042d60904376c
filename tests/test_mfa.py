"""Multi-factor login (TOTP) for the console, and app passwords for the Administration API and
SMTP AUTH: set up, confirmed, used, refused, throttled, reset and revoked as a user and an
attacker would try them."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pyotp
import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin.mfa import STEP_S
from tests.apiclient import api_client, basic, decode
from tests.helpers import audit_since, call_function, free_port, mk_ok, serving
from tests.web.test_journal import server

PASSWORD = "Olga-pass-1"


def mc(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["result"]
    return body


def login(api: TestClient, user: str, password: str, code: str | None = None) -> Any:
    body: dict[str, Any] = {"userName": user, "password": password}
    if code is not None:
        body["code"] = code
    return api.post("/mcapi/auth/login", json=body)


def session(api: TestClient, user: str, password: str, code: str | None = None) -> dict[str, str]:
    resp = login(api, user, password, code)
    assert resp.status_code == 200, resp.text
    return {"X-Fs-SessionId": mc(resp)["data"]["sessionId"]}


def code_at(secret: str, steps_ahead: int = 0) -> str:
    totp = pyotp.TOTP(secret, interval=STEP_S)
    return totp.generate_otp(int(time.time() // STEP_S) + steps_ahead)


def enrol(api: TestClient, headers: dict[str, str], user: str) -> tuple[str, list[str]]:
    """InitializeMFA and ConfirmMFA through the console: (secret, recovery codes)."""
    setup = mc(api.post("/mcapi/mfa/initialize", headers=headers, json={"userName": user}))
    assert setup["status"] == "success", setup
    secret = setup["data"]["secret"]
    confirmed = mc(api.post("/mcapi/mfa/confirm", headers=headers,
                            json={"userName": user, "code": code_at(secret)}))
    assert confirmed["status"] == "success", confirmed
    return secret, confirmed["data"]["recoveryCodes"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mk_ok(data, "user", "list")  # the initial administrator
    call_function(data, "CreateUser", userName="olga", privileges="login", password=PASSWORD)
    call_function(data, "SetUserRole", userName="olga", role="operator")
    return data


def test_setting_up_shows_the_secret_as_uri_and_qr_code(data: Path) -> None:
    with api_client(data) as api:
        headers = session(api, "olga", PASSWORD)
        setup = mc(api.post("/mcapi/mfa/initialize", headers=headers,
                            json={"userName": "olga"}))["data"]
    uri = urlsplit(setup["uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/mailkeep:olga"
    assert parse_qs(uri.query)["secret"] == [setup["secret"]]
    assert parse_qs(uri.query)["issuer"] == ["mailkeep"]
    assert len(setup["secret"]) == 32  # 160 bits of base32
    assert setup["qrCode"].startswith("data:image/svg+xml")
    assert "<svg" in unquote(setup["qrCode"])
    # Not confirmed yet: the password alone still logs in.
    with api_client(data) as api:
        session(api, "olga", PASSWORD)


def test_console_login_needs_a_code_once_confirmed(data: Path) -> None:
    with api_client(data) as api:
        secret, recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
        assert len(recovery) == 10 and len(set(recovery)) == 10

        missing = login(api, "olga", PASSWORD)
        assert missing.status_code == 401 and mc(missing)["code"] == 2004
        wrong = login(api, "olga", PASSWORD, "000000" if code_at(secret) != "000000"
                      else "111111")
        assert wrong.status_code == 401 and mc(wrong)["code"] == 2001

        now = code_at(secret, 1)  # the next step's code counts too (clocks drift)
        session(api, "olga", PASSWORD, now)
        replay = login(api, "olga", PASSWORD, now)  # seen once: worth nothing now
        assert mc(replay)["code"] == 2001
        older = login(api, "olga", PASSWORD, code_at(secret))  # a step before the one used
        assert mc(older)["code"] == 2001

        session(api, "olga", PASSWORD, recovery[0].upper())  # a recovery code, once
        assert mc(login(api, "olga", PASSWORD, recovery[0]))["code"] == 2001
        session(api, "olga", PASSWORD, " ".join(recovery[1].split("-")))
        # The wrong password with a right code is still the wrong password.
        assert mc(login(api, "olga", "not-it", recovery[2]))["code"] == 2001


def test_wrong_codes_are_throttled_like_wrong_passwords(data: Path) -> None:
    """Someone who has the password guesses codes: after five wrong ones the account is locked
    for that address, the right code included."""
    with api_client(data) as api:
        secret, _recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
        right = code_at(secret, 1)
        guesses = [f"{n:06d}" for n in range(100_000, 100_010) if f"{n:06d}" != right][:5]
        for guess in guesses:
            assert mc(login(api, "olga", PASSWORD, guess))["code"] == 2001
        locked = login(api, "olga", PASSWORD, right)
        assert locked.status_code == 429 and mc(locked)["code"] == 2002


def test_basic_auth_takes_app_passwords_only_once_mfa_is_on(data: Path) -> None:
    call_function(data, "SetUserPrivileges", userName="olga", privileges="admin,login")
    with api_client(data) as api:
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", PASSWORD)).status_code == 200
        enrol(api, session(api, "olga", PASSWORD), "olga")
        # The account's own password carries no second factor: refused on Basic auth.
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", PASSWORD)).status_code == 401
        made = decode(api.post("/api/invoke/CreateAppPassword", headers=basic(),
                               data={"userName": "olga", "name": "monitoring"}))["result"]
        app = made["password"]
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", app)).status_code == 200
        listed = decode(api.post("/api/invoke/GetAppPasswords", headers=basic(),
                                 data={"userName": "olga"}))["result"]
        assert [p["name"] for p in listed] == ["monitoring"] and app not in json.dumps(listed)
        assert listed[0]["lastUsed"] is not None
        # Never for the console.
        assert mc(login(api, "olga", app))["code"] == 2001
        # Revoked: refused at once (no cached success survives).
        decode(api.post("/api/invoke/DeleteAppPasswords", headers=basic(),
                        data={"userName": "olga"}))
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", app)).status_code == 401
    assert app not in json.dumps(audit_since(data))


def test_an_administrator_resets_a_lost_authenticator(data: Path) -> None:
    with api_client(data) as api:
        secret, _recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
        # Confirming ended the sessions opened without a second factor: log in again. An
        # operator may set up its own MFA, not someone else's, and may not switch it off.
        olga = session(api, "olga", PASSWORD, code_at(secret, 1))
        assert mc(api.post("/mcapi/mfa/disable", headers=olga,
                           json={"userName": "olga"}))["code"] == 1003
        resp = api.post("/mcapi/mfa/initialize", headers=olga, json={"userName": "admin"})
        assert mc(resp)["code"] == 3002 and "its own" in mc(resp)["message"]
        decode(api.post("/api/invoke/DisableMFA", headers=basic(), data={"userName": "olga"}))
        session(api, "olga", PASSWORD)  # the password alone again
        # The reset ended olga's sessions.
        assert mc(api.get("/mcapi/connection/list", headers=olga))["code"] == 3001


def test_the_secret_survives_a_master_key_renewal(data: Path) -> None:
    with api_client(data) as api:
        secret, _recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
    mk_ok(data, "call", "RenewMasterKey")
    retired = list((data / "conf").glob("master.key.retired-*"))
    assert retired
    for path in retired:
        path.unlink()  # the secret was sealed anew: the old key is no longer needed for it
    with api_client(data) as api:
        session(api, "olga", PASSWORD, code_at(secret, 1))


def test_smtp_auth_takes_an_app_password_not_the_account_password(data: Path) -> None:
    call_function(data, "SetUserPrivileges", userName="olga", privileges="archive,login")
    with api_client(data) as api:
        enrol(api, session(api, "olga", PASSWORD), "olga")
    app = call_function(data, "CreateAppPassword", userName="olga", name="mail client")
    mk_ok(data, "settings", "set", "smtp.auth", "true")
    tls = ssl._create_unverified_context()
    with server(data) as (_proc, port):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=tls)
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("olga", PASSWORD)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=tls)
            client.login("olga", app["password"])


def test_a_session_alone_cannot_replace_the_authenticator(data: Path) -> None:
    """Someone holding olga's open session (not her phone) tries to set up MFA anew: refused
    without a code of the authenticator in force; and setting up again switches nothing off
    until the new secret is confirmed."""
    with api_client(data) as api:
        secret, recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
        olga = session(api, "olga", PASSWORD, code_at(secret, 1))
        refused = api.post("/mcapi/mfa/initialize", headers=olga, json={"userName": "olga"})
        assert mc(refused)["code"] == 3002 and "currentCode" in mc(refused)["message"]
        again = mc(api.post("/mcapi/mfa/initialize", headers=olga, json={
            "userName": "olga", "currentCode": recovery[0]}))
        assert again["status"] == "success"
        # Pending: the authenticator in force still counts, and a code is still needed.
        assert mc(login(api, "olga", PASSWORD))["code"] == 2004
        session(api, "olga", PASSWORD, recovery[1])


def test_codes_are_capped_per_account_whatever_the_address(tmp_path: Path, data: Path) -> None:
    """Whoever has the password guesses codes from many addresses (through a trusted proxy):
    after ten wrong codes the account's codes are locked, from every address, the right code
    included."""
    call_function(data, "SetSetting", key="server.trusted_proxies", value="127.0.0.1")
    with api_client(data) as api:
        secret, _recovery = enrol(api, session(api, "olga", PASSWORD), "olga")
    port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port):
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False,
                          timeout=30) as http:
            right = code_at(secret, 1)
            wrong = [f"{n:06d}" for n in range(200_000, 200_020) if f"{n:06d}" != right][:10]
            for i, guess in enumerate(wrong):
                resp = http.post("/mcapi/auth/login", headers={
                    "X-Forwarded-For": f"2001:db8:{i}::1"}, json={
                        "userName": "olga", "password": PASSWORD, "code": guess})
                assert resp.json()["result"]["code"] == 2001, resp.text
            resp = http.post("/mcapi/auth/login", headers={"X-Forwarded-For": "2001:db8:99::1"},
                             json={"userName": "olga", "password": PASSWORD, "code": right})
    assert resp.status_code == 429 and resp.json()["result"]["code"] == 2002


def test_confirming_mfa_ends_the_cached_password_at_once(data: Path) -> None:
    call_function(data, "SetUserPrivileges", userName="olga", privileges="admin,login")
    with api_client(data) as api:
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", PASSWORD)).status_code == 200  # now cached
        enrol(api, session(api, "olga", PASSWORD), "olga")
        assert api.post("/api/invoke/GetServerInfo",
                        headers=basic("olga", PASSWORD)).status_code == 401


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "12345６", "\u00b9\u00b2\u00b3456"])
def test_digits_of_other_scripts_are_a_wrong_code(data: Path, code: str) -> None:
    with api_client(data) as api:
        enrol(api, session(api, "olga", PASSWORD), "olga")
        resp = login(api, "olga", PASSWORD, code)
        assert resp.status_code == 401 and mc(resp)["code"] == 2001
