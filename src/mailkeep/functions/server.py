"""Server functions: what a monitoring sensor asks first, the service's configuration and its
TLS certificate, and the licence (nothing is limited)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from mailkeep import __version__
from mailkeep.core.admin import certificates
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import ROLES, Users
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

UNLIMITED = 2**31 - 1  # what "no limit" reads as to a check that compares numbers


@function("GetServerInfo", "Version and machine name of the server.",
          '{"version": str, "machineName": str}', changes=False, roles=ROLES)
def get_server_info(call: Call) -> dict[str, Any]:
    return {"version": __version__, "machineName": socket.gethostname()}


LICENSE_SHAPE = ('{"productName": str, "version": str, "licenseType": str, "licensee": null, '
                 '"namedUsers": int, "maxNamedUsers": int, "unlimited": true, '
                 '"expirationDate": null, "features": [str]}')


@function("GetLicenseInformation", "The licence: mailkeep is open source (Apache-2.0) and "
          "nothing is limited. namedUsers counts the accounts; maxNamedUsers is 2147483647, so "
          "that a check comparing the two (as checks written for the original do) never "
          "warns; unlimited says so plainly; there is no expiry.", LICENSE_SHAPE,
          changes=False, roles=ROLES)
def get_license_information(call: Call) -> dict[str, Any]:
    return {"productName": "mailkeep", "version": __version__,
            "licenseType": "Open source (Apache-2.0)", "licensee": None,
            "namedUsers": len(Users(call.master).list()), "maxNamedUsers": UNLIMITED,
            "unlimited": True, "expirationDate": None,
            "features": ["archiving", "journaling", "encryption", "api", "console"]}


def _configured(conf: Settings) -> tuple[Path, Path] | None:
    cert, key = conf.get("tls.cert"), conf.get("tls.key")
    return (Path(cert), Path(key)) if cert and key else None


CERT_SHAPE = ('{"thumbprint": str, "fingerprint": str, "subject": str, "names": [str], '
              '"notBefore": str, "notAfter": str, "selfSigned": bool, "path": str}')
CONFIG_SHAPE = ('{"machineName": str, "dataDirectory": str, "host": str, "port": int, '
                '"api": {"enabled": bool}, "tls": {"enabled": bool, "certificate": '
                f'{CERT_SHAPE}|null, "available": [{CERT_SHAPE}]}}, "smtp": {{"enabled": bool, '
                '"host": str, "port": int}}')


@function("GetServiceConfiguration", "How the service is set up (from its settings; flags of "
          "`mailkeep serve` may override them for a run): address and port, whether the "
          "Administration API answers, TLS with the certificate it serves (null: the "
          "self-signed one made on first start, until then) and the certificates it holds "
          "(SetServiceCertificate chooses among them), and the SMTP journal receiver. "
          "Never a private key.", CONFIG_SHAPE, changes=False, roles=ROLES)
def get_service_configuration(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    data = call.data_dir
    configured = _configured(conf)
    held = certificates.held(data, configured)
    serving = configured or (data / certificates.DIR / "server.crt",
                             data / certificates.DIR / "server.key")
    current = next((c for c in held if c.cert.resolve() == serving[0].resolve()), None)
    return {"machineName": socket.gethostname(), "dataDirectory": str(data),
            "host": conf.get("server.host"), "port": conf.get("server.port"),
            "api": {"enabled": conf.get("api.enabled")},
            "tls": {"enabled": conf.get("tls.enabled"),
                    "certificate": current.shown() if current else None,
                    "available": [c.shown() for c in held]},
            "smtp": {"enabled": conf.get("smtp.enabled"), "host": conf.get("smtp.host"),
                     "port": conf.get("smtp.port")}}


@function("SetServiceCertificate", "Serve the certificate with this thumbprint (SHA-1, as "
          "Windows shows it, or the SHA-256 fingerprint), one of those the server holds: the "
          "files in the data directory's tls/ folder (NAME.crt with NAME.key, or one NAME.pem "
          "holding both). A running server serves it to new connections at once, without a "
          "restart, and the settings tls.cert and tls.key name it from then on.",
          f"{CERT_SHAPE} (the certificate now served)",
          Field("thumbprint", "string", description="The certificate's SHA-1 thumbprint or "
                "SHA-256 fingerprint (hex; colons and spaces are ignored)."))
def set_service_certificate(call: Call) -> dict[str, Any]:
    conf = Settings(call.master)
    chosen = certificates.find(certificates.held(call.data_dir, _configured(conf)),
                               call.arg("thumbprint"))
    before = _configured(conf)
    call.note(before=str(before[0]) if before else None, fingerprint=chosen.fingerprint)
    switch = call.services.certificate
    if switch is not None:  # first: a certificate that cannot be served is not kept either
        switch.use(chosen.cert, chosen.key)
    with call.master.tx():
        conf.set("tls.cert", str(chosen.cert.resolve()))
        conf.set("tls.key", str(chosen.key.resolve()))
    if switch is not None:
        call.ctx.log(f"Now serving {chosen.subject} ({chosen.fingerprint}).")
    else:
        call.ctx.log("No server with TLS runs in this process: the certificate is served "
                     "from the next start of `mailkeep serve`.")
    return chosen.shown()
