"""The service's configuration and its TLS certificate (GetServiceConfiguration,
SetServiceCertificate) against a real `mailkeep serve` and real TLS handshakes, the licence a
monitoring check reads (GetLicenseInformation) and the stored credentials (GetCredentials);
through the Administration API and `mailkeep call`, with the audit record of each call and the
metadata of the original.

What the other modules of these functions share is here too: the audit log as the master
database holds it, the promise of docs/functions.md about a result's shape, and get-metadata
compared with the original's function list."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import Result
from starlette.testclient import TestClient

from mailkeep.client import AdminApiError, AdminClient
from tests.apiclient import api_client, archive_with_messages, basic, finish, invoke
from tests.helpers import (
    FUNCTION_SPEC,
    ROOT,
    audit_since,
    free_port,
    last_audit_id,
    master_sql,
    mk,
    mk_ok,
    serving,
)

SHELL_ACTOR = f"cli:{getpass.getuser()}"  # how the audit log names `mailkeep call`
SPEC = {f["name"]: f for f in json.loads(FUNCTION_SPEC.read_text())}
FUNCTIONS_MD = ROOT / "docs" / "functions.md"


# -- shared with the other modules of these functions ----------------------------------------
def run(api: TestClient, function_name: str, **args: Any) -> tuple[dict[str, Any], str]:
    """A call through the Administration API, followed to its end like MailStore's client."""
    return finish(api, invoke(api, function_name, **args))


def succeeded(api: TestClient, function_name: str, **args: Any) -> Any:
    final, _log = run(api, function_name, **args)
    assert final["statusCode"] == "succeeded", final
    return final["result"]


def cli_call(data: Path, function_name: str, **args: str) -> Result:
    """`mailkeep call NAME k=v ...` in this process."""
    return mk(data, "call", function_name, *[f"{k}={v}" for k, v in args.items()])


def cli_result(data: Path, function_name: str, **args: str) -> Any:
    """`mailkeep call`, which must succeed: its result, printed as JSON."""
    result = cli_call(data, function_name, **args)
    assert result.exit_code == 0, (function_name, result.output)
    return json.loads(result.stdout) if result.stdout.strip() else None


def one_audit(data: Path, after: int, action: str, actor: str) -> dict[str, Any]:
    """The one audit record a call wrote: nothing else by that caller, no other record of that
    function; its details carry the arguments and the outcome."""
    rows = [r for r in audit_since(data, after) if r[0] == actor or r[1] == action]
    assert [(a, act) for a, act, _ in rows] == [(actor, action)], rows
    details = rows[0][2]
    assert "args" in details and details["outcome"] in ("succeeded", "failed"), details
    return details


def no_audit(data: Path, after: int, action: str) -> None:
    """A read-only function is not audited (a sensor asking every minute is not history)."""
    assert [r for r in audit_since(data, after) if r[1] == action] == []


def metadata(api: TestClient) -> dict[str, dict[str, Any]]:
    resp = api.get("/api/get-metadata", headers=basic())
    assert resp.status_code == 200, resp.text
    return {m["name"]: m for m in json.loads(resp.content.decode("utf-8-sig"))}


def assert_metadata_as_original(meta: dict[str, dict[str, Any]], name: str) -> None:
    """get-metadata lists the function with the original's argument names and types, in its
    order, and says whether it runs long as the original does."""
    ours, theirs = meta[name], SPEC[name]
    assert [(a["name"], a["type"]) for a in ours["args"]] == [
        (a["name"], a["type"]) for a in theirs["args"]], name
    for mine, original in zip(ours["args"], theirs["args"], strict=True):
        assert mine["nullable"] == original["nullable"] or "default" in mine, (name, mine)
    assert ours["longRunning"] == theirs["longRunning"], name


# The result shapes docs/functions.md promises, as a tiny grammar: {"key": shape, ...},
# [shape], a|b, "literal", true, null, str, int, bool, any; text after the shape is a comment.
_TOKEN = re.compile(r'\s*(\.\.\.|"[^"]*"|[{}\[\]:,|]|[A-Za-z]+)')


def documented_result(name: str) -> str:
    text = FUNCTIONS_MD.read_text()
    section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^Result: `(.*)`$", section, re.M)
    assert found, name
    return found.group(1)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while (m := _TOKEN.match(text, pos)) is not None:
        out.append(m.group(1))
        pos = m.end()
    return out


def _parse(tokens: list[str], i: int) -> tuple[Any, int]:
    alternatives = []
    while True:
        shape, i = _single(tokens, i)
        alternatives.append(shape)
        if i < len(tokens) and tokens[i] == "|":
            i += 1
            continue
        return (alternatives[0] if len(alternatives) == 1 else ("alt", alternatives)), i


def _single(tokens: list[str], i: int) -> tuple[Any, int]:
    token = tokens[i]
    if token == "{":
        fields: dict[str, Any] = {}
        more, i = False, i + 1
        while tokens[i] != "}":
            if tokens[i] == "...":
                more, i = True, i + 1
            else:
                assert tokens[i + 1] == ":", tokens[i:]
                fields[json.loads(tokens[i])], i = _parse(tokens, i + 2)
            if tokens[i] == ",":
                i += 1
        return ("object", fields, more), i + 1
    if token == "[":
        inner, i = _parse(tokens, i + 1)
        assert tokens[i] == "]", tokens[i:]
        return ("list", inner), i + 1
    if token.startswith('"'):
        return ("literal", json.loads(token)), i + 1
    if token in ("true", "null"):
        return ("literal", {"true": True, "null": None}[token]), i + 1
    return ("type", token), i + 1


def _matches(value: Any, shape: Any) -> bool:
    kind = shape[0]
    if kind == "alt":
        return any(_matches(value, s) for s in shape[1])
    if kind == "literal":
        return value is shape[1] if shape[1] in (None, True) else value == shape[1]
    if kind == "list":
        return isinstance(value, list) and all(_matches(v, shape[1]) for v in value)
    if kind == "object":
        fields, more = shape[1], shape[2]
        return (isinstance(value, dict) and set(fields) <= set(value)
                and (more or set(value) <= set(fields))
                and all(_matches(value[k], s) for k, s in fields.items()))
    return {"str": isinstance(value, str), "bool": isinstance(value, bool), "any": True,
            "int": isinstance(value, int) and not isinstance(value, bool)}[shape[1]]


def assert_documented_shape(name: str, value: Any) -> None:
    """The result has the shape docs/functions.md promises for the function: the same keys,
    values of the types it names."""
    text = documented_result(name)
    shape, _ = _parse(_tokens(text), 0)
    assert _matches(value, shape), f"{name}: {json.dumps(value)}\nis not as documented: {text}"


def no_key_material(value: Any) -> None:
    text = json.dumps(value)
    assert "PRIVATE KEY" not in text and "BEGIN" not in text, text


# -- TLS: certificates the server may hold, and what a client is shown -------------------------
def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def hold(data: Path, name: str, key_type: trustme.KeyType = trustme.KeyType.ECDSA,
         one_file: bool = False) -> dict[str, str]:
    """A certificate for localhost and 127.0.0.1, put where the server looks for those it
    holds (the data directory's tls/: NAME.crt and NAME.key, or one NAME.pem): its SHA-256
    fingerprint, its SHA-1 thumbprint, its path and the file of the CA that issued it (kept
    outside tls/, for clients to trust)."""
    ca = trustme.CA(key_type=key_type)
    leaf = ca.issue_cert("localhost", "127.0.0.1", key_type=key_type)
    ca_file = data.parent / f"{name}-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = data / "tls"
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    if one_file:
        path = tls / f"{name}.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    else:
        path = tls / f"{name}.crt"
        leaf.cert_chain_pems[0].write_to_path(str(path))
        leaf.private_key_pem.write_to_path(str(tls / f"{name}.key"))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return {"fingerprint": colon_hex(hashlib.sha256(der).digest()),
            "thumbprint": hashlib.sha1(der).hexdigest().upper(), "path": str(path),
            "ca": str(ca_file)}


def _any_certificate() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read whichever certificate is presented
    return context


def presented(port: int) -> str:
    """The SHA-256 fingerprint of the certificate the server presents to a new TLS
    connection (a real handshake)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            _any_certificate().wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return colon_hex(hashlib.sha256(der).digest())


def presented_by_starttls(port: int) -> str:
    """The same for the SMTP journal receiver, after STARTTLS."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=_any_certificate())
        der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    return colon_hex(hashlib.sha256(der).digest())


def client(port: int, trust: str | Path) -> AdminClient:
    """The Python client over real TLS, trusting the certificates this PEM file issued (or is:
    the self-signed one); any other certificate fails the handshake."""
    return AdminClient(f"https://127.0.0.1:{port}", verify=str(trust), timeout=30)


def self_signed(data: Path) -> Path:
    return data / "tls" / "server.crt"


def serve(data: Path, port: int, *flags: str) -> Any:
    """A real `mailkeep serve` with TLS and the Administration API on 127.0.0.1:port."""
    return serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), *flags,
                   port=port)


def settings_of(data: Path) -> dict[str, Any]:
    return {s["key"]: s["value"] for s in cli_result(data, "GetSettings")}


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with its first store and no certificate yet."""
    path = tmp_path / "data"
    mk_ok(path, "store", "create", "Default")
    return path


# -- GetServiceConfiguration -------------------------------------------------------------------
def test_service_configuration_says_how_the_service_is_set_up(data: Path, port: int) -> None:
    """Before the first start there is no certificate; the settings say where the service
    listens, and the answer follows them; once `serve` has made its self-signed certificate,
    the answer names it with the fingerprint a real handshake shows. The API and `mailkeep
    call` answer alike, never a private key, and a read is not audited."""
    with api_client(data) as api:
        before = last_audit_id(data)
        conf = succeeded(api, "GetServiceConfiguration")
        no_audit(data, before, "GetServiceConfiguration")
    assert_documented_shape("GetServiceConfiguration", conf)
    assert conf["tls"] == {"enabled": True, "certificate": None, "available": []}
    assert (conf["host"], conf["port"], conf["api"], conf["smtp"]) == (
        "0.0.0.0", 8463, {"enabled": False}, {"enabled": False, "host": "0.0.0.0", "port": 2525})
    assert conf["dataDirectory"] == str(data.resolve())
    assert conf["machineName"] == socket.gethostname()

    for key, value in (("server.host", "127.0.0.1"), ("server.port", str(port)),
                       ("api.enabled", "true"), ("smtp.port", "2626")):
        mk_ok(data, "settings", "set", key, value)
    with serving(data, port=port):  # no flags: everything from the settings
        shown = presented(port)
        with client(port, self_signed(data)) as api:
            conf = api.invoke("GetServiceConfiguration")
    assert_documented_shape("GetServiceConfiguration", conf)
    assert (conf["host"], conf["port"], conf["api"]["enabled"], conf["smtp"]["port"]) == (
        "127.0.0.1", port, True, 2626)
    cert = conf["tls"]["certificate"]
    assert cert["fingerprint"] == shown and cert["selfSigned"] is True
    assert cert["path"] == str(data.resolve() / "tls" / "server.crt")
    assert {"localhost", "127.0.0.1"} <= set(cert["names"])
    assert conf["tls"]["available"] == [cert]
    no_key_material(conf)
    before = last_audit_id(data)
    assert cli_result(data, "GetServiceConfiguration") == conf
    no_audit(data, before, "GetServiceConfiguration")


# -- SetServiceCertificate ---------------------------------------------------------------------
def test_set_service_certificate_switches_the_running_server_without_a_restart(
        data: Path, port: int) -> None:
    """The server holds its self-signed certificate and two an administrator put in tls/ (a
    .crt with its .key, a .pem holding both; a .crt without its key is not one it holds).
    SetServiceCertificate by SHA-1 thumbprint (as Windows shows it), then by SHA-256
    fingerprint, switches what a new TLS handshake is shown, in the same running process; a
    client trusting only the new certificate's issuer gets in; the settings name the files;
    an unknown or malformed thumbprint is a clear error that changes nothing; each call is one
    audit record; the next start serves the chosen one."""
    second = hold(data, "second")
    third = hold(data, "third", one_file=True)
    orphan = hold(data, "orphan")
    (data / "tls" / "orphan.key").unlink()
    with serve(data, port) as served:
        pid = served.proc.pid
        original = presented(port)
        with client(port, self_signed(data)) as api:
            conf = api.invoke("GetServiceConfiguration")
            held = {Path(c["path"]).name: c for c in conf["tls"]["available"]}
            assert set(held) == {"server.crt", "second.crt", "third.pem"}
            assert conf["tls"]["certificate"] == held["server.crt"]
            assert held["server.crt"]["fingerprint"] == original
            for mine, name in ((second, "second.crt"), (third, "third.pem")):
                assert (held[name]["fingerprint"], held[name]["thumbprint"]) == (
                    mine["fingerprint"], mine["thumbprint"])
                assert held[name]["selfSigned"] is False
                assert held[name]["names"] == ["localhost", "127.0.0.1"]
            assert orphan["fingerprint"] not in json.dumps(conf)
            no_key_material(conf)

            before = last_audit_id(data)
            windows_style = " ".join(re.findall("..", second["thumbprint"].lower()))
            chosen = api.invoke("SetServiceCertificate", thumbprint=windows_style)
        assert_documented_shape("SetServiceCertificate", chosen)
        assert chosen == held["second.crt"]
        assert presented(port) == second["fingerprint"]
        assert served.proc.poll() is None and served.proc.pid == pid  # no restart
        details = one_audit(data, before, "SetServiceCertificate", "api:admin")
        assert details["args"] == {"thumbprint": windows_style}
        assert (details["outcome"], details["fingerprint"]) == ("succeeded", second["fingerprint"])

        with client(port, second["ca"]) as api:  # the old certificate would fail here
            conf = api.invoke("GetServiceConfiguration")
            assert conf["tls"]["certificate"] == held["second.crt"]
            settings = {s["key"]: s["value"] for s in api.invoke("GetSettings")}
            assert (settings["tls.cert"], settings["tls.key"]) == (
                second["path"], str(Path(second["path"]).with_suffix(".key")))
            chosen = api.invoke("SetServiceCertificate", thumbprint=third["fingerprint"])
        assert chosen == held["third.pem"]
        assert presented(port) == third["fingerprint"]

        with client(port, third["ca"]) as api:
            before = last_audit_id(data)
            for thumbprint, error in (
                    ("AB" * 20, "the server holds no certificate with thumbprint " + "AB" * 20),
                    (orphan["fingerprint"], "the server holds no certificate"),
                    ("not-a-thumbprint", "thumbprint must be a certificate's SHA-1 thumbprint")):
                with pytest.raises(AdminApiError) as refused:
                    api.invoke("SetServiceCertificate", thumbprint=thumbprint)
                assert error in refused.value.message, refused.value.message
            assert api.invoke("GetServiceConfiguration")["tls"]["certificate"] == held["third.pem"]
        assert presented(port) == third["fingerprint"]
        rows = audit_since(data, before)
        assert [(a, act, d["outcome"]) for a, act, d in rows] == [
            ("api:admin", "SetServiceCertificate", "failed")] * 3, rows
        assert served.proc.poll() is None and served.proc.pid == pid
    assert settings_of(data)["tls.cert"] == third["path"]
    with serve(data, port):
        assert presented(port) == third["fingerprint"]


def test_serve_prints_the_fingerprint_a_client_pins(data: Path, port: int) -> None:
    """`serve` prints the SHA-256 fingerprint of the certificate it serves, for clients to pin
    (README). Whatever its hex digits are, the printed line is the fingerprint a handshake
    shows. The certificate is one whose fingerprint holds the pair CD where a console that
    reads ":name:" as an emoji code (left to right, a match taking both its colons) would
    turn ":CD:" into a picture: at an odd place, not the last. It is found by a bounded search
    among freshly issued certificates (about one in eighteen has it)."""

    def emoji_prone(fingerprint: str) -> bool:
        return any(pair == "CD" for pair in fingerprint.split(":")[1:-1:2])

    ca = trustme.CA()
    for _ in range(600):
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        fingerprint = colon_hex(hashlib.sha256(der).digest())
        if emoji_prone(fingerprint):
            break
    assert emoji_prone(fingerprint)
    (data / "tls").mkdir(mode=0o700)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(data / "tls" / "chosen.pem"))
    mk_ok(data, "call", "SetServiceCertificate", f"thumbprint={fingerprint}")
    with serve(data, port) as served:
        assert presented(port) == fingerprint
    printed = [line for line in served.out.decode().splitlines() if "fingerprint" in line]
    assert printed == [f"TLS certificate SHA-256 fingerprint: {fingerprint}"]


def test_switching_to_an_rsa_certificate_presents_it(data: Path, port: int) -> None:
    """The self-signed certificate has an EC key; certificates from a CA often have RSA keys.
    Switching from the one to the other must show clients the chosen certificate."""
    rsa = hold(data, "issued", key_type=trustme.KeyType.RSA)
    with serve(data, port):
        with client(port, self_signed(data)) as api:
            chosen = api.invoke("SetServiceCertificate", thumbprint=rsa["thumbprint"])
        assert chosen["fingerprint"] == rsa["fingerprint"]
        assert presented(port) == rsa["fingerprint"]


def test_a_client_pinning_the_chosen_certificate_gets_in(data: Path, port: int) -> None:
    """README: a client pins the server's certificate by its SHA-256 fingerprint
    (`AdminClient(..., fingerprint=...)`, `mailkeep call --url ... --fingerprint`). Once
    SetServiceCertificate serves a certificate a CA issued (what an administrator puts in
    tls/), pinning its fingerprint must let the client in, as it does for the self-signed
    one."""
    second = hold(data, "second")
    with serve(data, port):
        with AdminClient(f"https://127.0.0.1:{port}", fingerprint=presented(port)) as api:
            api.invoke("SetServiceCertificate", thumbprint=second["fingerprint"])
        assert presented(port) == second["fingerprint"]
        res = mk(data, "call", "--url", f"https://127.0.0.1:{port}", "--password", "admin",
                 "--fingerprint", second["fingerprint"], "GetServerInfo")
        assert res.exit_code == 0, res.output
        with AdminClient(f"https://127.0.0.1:{port}", fingerprint=second["fingerprint"]) as api:
            assert api.invoke("GetServerInfo")["machineName"] == socket.gethostname()


def test_the_journal_receivers_starttls_presents_the_chosen_certificate(data: Path,
                                                                        port: int) -> None:
    """The SMTP journal receiver offers STARTTLS "with the server's certificate" (setting
    smtp.starttls); once SetServiceCertificate has switched it, STARTTLS shows the same
    certificate as HTTPS does, as the running server serves it "to new connections at
    once"."""
    second = hold(data, "second", one_file=True)
    smtp_port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port),
                 "--smtp-port", str(smtp_port), port=port, smtp_port=smtp_port):
        original = presented(port)
        assert presented_by_starttls(smtp_port) == original
        with client(port, self_signed(data)) as api:
            api.invoke("SetServiceCertificate", thumbprint=second["fingerprint"])
        assert presented(port) == second["fingerprint"]
        assert presented_by_starttls(smtp_port) == second["fingerprint"]


def test_set_service_certificate_without_a_running_server_names_it_for_the_next_start(
        data: Path, port: int) -> None:
    """In-process (`mailkeep call`, or an app without TLS) no server serves TLS: the settings
    name the certificate, the log says it is served from the next start, and it is. A
    thumbprint the server does not hold, or one that is not a thumbprint, fails with its exit
    code and changes nothing."""
    second = hold(data, "second")
    third = hold(data, "third")
    before = last_audit_id(data)
    res = cli_call(data, "SetServiceCertificate", thumbprint=second["fingerprint"])
    assert res.exit_code == 0, res.output
    chosen = json.loads(res.stdout)
    assert_documented_shape("SetServiceCertificate", chosen)
    assert (chosen["fingerprint"], chosen["path"]) == (second["fingerprint"], second["path"])
    assert "No server with TLS runs in this process" in res.stderr
    assert "from the next start" in res.stderr
    details = one_audit(data, before, "SetServiceCertificate", SHELL_ACTOR)
    assert (details["outcome"], details["args"]) == (
        "succeeded", {"thumbprint": second["fingerprint"]})

    for thumbprint, code, error in (("00" * 32, 3, "holds no certificate"),
                                    ("12345", 2, "40 hex digits")):
        before = last_audit_id(data)
        res = cli_call(data, "SetServiceCertificate", thumbprint=thumbprint)
        assert res.exit_code == code and error in res.stderr, res.output
        assert one_audit(data, before, "SetServiceCertificate", SHELL_ACTOR)["outcome"] == "failed"
    assert settings_of(data)["tls.cert"] == second["path"]

    with api_client(data) as api:
        before = last_audit_id(data)
        final, log = run(api, "SetServiceCertificate", thumbprint=third["thumbprint"])
        assert final["statusCode"] == "succeeded", final
        assert final["result"]["fingerprint"] == third["fingerprint"]
        assert "No server with TLS runs in this process" in log
        assert one_audit(data, before, "SetServiceCertificate", "api:admin")["outcome"] == (
            "succeeded")
    with serve(data, port):
        assert presented(port) == third["fingerprint"]


# -- GetLicenseInformation ---------------------------------------------------------------------
def test_license_information_passes_a_monitoring_check(tmp_path: Path) -> None:
    """The licence in the original's shape: namedUsers counts the accounts, maxNamedUsers is
    the largest 32-bit number, so the comparison a check written for the original makes
    (warn when namedUsers >= maxNamedUsers, crpb/check_mk's mailstore.py) passes however many
    accounts there are; nothing expires. The API and `mailkeep call` agree; reads are not
    audited."""
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 3)
    with api_client(data) as api:
        for name in ("alice", "bob", "carol"):
            succeeded(api, "CreateUser", userName=name, privileges="login")
        before = last_audit_id(data)
        lic = succeeded(api, "GetLicenseInformation")
        users = succeeded(api, "GetUsers")
        no_audit(data, before, "GetLicenseInformation")
    assert_documented_shape("GetLicenseInformation", lic)
    assert lic["namedUsers"] == len(users) == 4
    assert (lic["maxNamedUsers"], lic["unlimited"], lic["expirationDate"]) == (2**31 - 1, True,
                                                                            None)
    state = 1 if lic["namedUsers"] >= lic["maxNamedUsers"] else 0
    metric = f'{state} "MS:LICENSE" licensecount={lic["namedUsers"]};{lic["maxNamedUsers"]}'
    assert metric == '0 "MS:LICENSE" licensecount=4;2147483647'
    assert cli_result(data, "GetLicenseInformation") == lic


# -- GetCredentials ----------------------------------------------------------------------------
SECRETS = {"imap": "Imap-Pass-41x", "oauth": "Oauth-Token-42y", "pop3": "Pop-Pass-43z",
           "relay": "Relay-Pass-44w", "popper": "Popper-Pass-45v", "notify": "Notify-Pass-46u"}


def test_credentials_list_what_logs_in_elsewhere_never_the_secret(tmp_path: Path) -> None:
    """Profiles (IMAP with a password, IMAP with an OAuth2 token, POP3 with APOP), named
    connections (SMTP and POP3 with passwords) and the notification mail (SMTP AUTH) each
    store a secret: GetCredentials lists who logs in where and that a secret is stored, and
    none of the secrets appears in its answer (API or command line) nor in the audit log. A
    directory profile and a connection without authentication log in nowhere: not listed."""
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 3)
    with api_client(data) as api:
        assert succeeded(api, "GetCredentials") == []
        succeeded(api, "CreateUser", userName="alice", privileges="login")
        for props in (
                {"name": "alice imap", "type": "imap", "userName": "alice",
                 "host": "imap.example.org", "login": "alice@example.org",
                 "password": SECRETS["imap"]},
                {"name": "alice oauth", "type": "imap", "userName": "alice",
                 "host": "outlook.office365.com", "login": "alice@example.com",
                 "authentication": "xoauth2", "accessToken": SECRETS["oauth"]},
                {"name": "old pop", "type": "pop3", "userName": "alice", "security": "none",
                 "host": "pop.example.org", "port": 1110, "login": "alice", "apop": True,
                 "password": SECRETS["pop3"]},
                {"name": "drop", "type": "directory", "userName": "alice",
                 "path": str(tmp_path / "mail")}):
            succeeded(api, "CreateProfile", properties=json.dumps(props))
        succeeded(api, "CreateConnection", name="relay", type="smtp",
                  serverName="smtp.example.org", port="587", security="starttls",
                  authentication="login", userName="relay-user", password=SECRETS["relay"])
        succeeded(api, "CreateConnection", name="popper", type="pop3",
                  serverName="pop.example.org", authentication="user", userName="pop-user",
                  password=SECRETS["popper"])
        succeeded(api, "CreateConnection", name="open", type="smtp",
                  serverName="mx.example.org", authentication="none")
        succeeded(api, "SetSmtpSettings", settings=json.dumps({
            "serverName": "mail.example.org", "port": 587, "useStartTls": True,
            "authenticationType": "SMTP", "userName": "notify@example.org",
            "password": SECRETS["notify"], "fromMailAddress": "archive@example.org",
            "toMailAddress": "admin@example.org"}))
        before = last_audit_id(data)
        body = invoke(api, "GetCredentials")
        no_audit(data, before, "GetCredentials")
    credentials = body["result"]
    assert_documented_shape("GetCredentials", credentials)
    assert [(c["usedBy"], c["name"], c["server"], c["userName"], c["authentication"],
             c["hasSecret"]) for c in credentials] == [
        ("profile", "alice imap", "imap.example.org:993", "alice@example.org", "login", True),
        ("profile", "alice oauth", "outlook.office365.com:993", "alice@example.com", "xoauth2",
         True),
        ("profile", "old pop", "pop.example.org:1110", "alice", "apop", True),
        ("connection", "relay", "smtp.example.org:587", "relay-user", "login", True),
        ("connection", "popper", "pop.example.org:110", "pop-user", "user", True),
        ("notification", "notification mail", "mail.example.org:587", "notify@example.org",
         "SMTP", True)]
    assert [c["id"] for c in credentials[:3]] == [1, 2, 3]
    res = cli_call(data, "GetCredentials")
    assert res.exit_code == 0 and json.loads(res.stdout) == credentials, res.output
    with master_sql(data) as db:
        audit = json.dumps(db.execute("SELECT * FROM audit").fetchall())
    for secret in SECRETS.values():
        for where, text in (("answer", json.dumps(body)), ("command line", res.output),
                            ("audit log", audit)):
            assert secret not in text, (secret, where)


# -- get-metadata -------------------------------------------------------------------------------
def test_metadata_matches_the_original(tmp_path: Path) -> None:
    """get-metadata lists these functions with the original's arguments and types."""
    with api_client(tmp_path / "data") as api:
        meta = metadata(api)
    for name in ("GetServiceConfiguration", "SetServiceCertificate", "GetLicenseInformation",
                 "GetCredentials"):
        assert_metadata_as_original(meta, name)
    assert [(a["name"], a["type"], a["nullable"]) for a in
            meta["SetServiceCertificate"]["args"]] == [("thumbprint", "string", False)]
