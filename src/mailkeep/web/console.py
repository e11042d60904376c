"""The web console: static files (web/static/, plain ES modules and CSS, no build step) at `/`,
and what a message's links serve (functions/reading.py makes them): its HTML body made safe,
its parts and its original bytes.

Every response here carries a strict policy of its own. The console's pages: scripts only from
the server (no inline script, no eval), nothing framed but its own message bodies, no referrer,
`nosniff`, never framed by another site. A message body (archived HTML, written by whoever sent
the mail) is served sanitized (core/mime/view.safe_html) as its own document under
`sandbox` (no script, an origin of its own) with `default-src 'none'`: images only from the
message itself (`data:`), and from https only when the reader asked for remote images. Parts
and the original are downloads (`attachment`, `application/octet-stream`): nothing of a mail
is ever rendered in the console's origin. The page holds its session in memory and sends it as
X-Fs-SessionId: no cookie, so another site has nothing to ride on.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailkeep.core.archive import Archive
from mailkeep.core.errors import Forbidden, MailkeepError, NotFound
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.mime.view import part_bytes, safe_html, view
from mailkeep.functions.reading import linked_message, read_link

STATIC = resources.files("mailkeep.web") / "static"
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}\.(js|css|svg|png|ico|html)")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
          "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon",
          "html": "text/html; charset=utf-8"}

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: "
               "blob:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action "
               "'none'; frame-ancestors 'none'")
COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
          "Cross-Origin-Opener-Policy": "same-origin",
          "Cross-Origin-Resource-Policy": "same-origin"}
BODY_STYLE = ("body{font:15px/1.45 system-ui,sans-serif;margin:12px;color:#111;background:#fff;"
              "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}"
              "pre{white-space:pre-wrap}")


def _body_policy(remote: bool) -> str:
    images = "data: https:" if remote else "data:"
    return (f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; base-uri 'none';"
            " form-action 'none'; frame-ancestors 'self'; sandbox allow-popups "
            "allow-popups-to-escape-sandbox")


def _plain(status: int, text: str) -> Response:
    return Response(text, status, {**COMMON, "Cache-Control": "no-store",
                                   "Content-Security-Policy": "default-src 'none'"},
                    media_type="text/plain; charset=utf-8")


def _download(data: bytes, name: str) -> Response:
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", name)[:100] or "download"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:200])}"
    return Response(data, 200, {**COMMON, "Cache-Control": "no-store",
                                "Content-Disposition": disposition,
                                "Content-Security-Policy": "default-src 'none'; sandbox"},
                    media_type="application/octet-stream")


class Console:
    def __init__(self, data_dir: Path, master: MasterDB, keys: KeyRing) -> None:
        self.data_dir = data_dir
        self.master = master
        self.keys = keys

    async def page(self, request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if not _NAME.fullmatch(name):
            return _plain(404, "Not found.")
        item = STATIC / name
        if not item.is_file():
            return _plain(404, "Not found.")
        data = item.read_bytes()
        headers = {**COMMON, "Content-Security-Policy": PAGE_POLICY,
                   "Cache-Control": "no-cache"}
        return Response(data, 200, headers, media_type=_TYPES[name.rsplit(".", 1)[1]])

    async def linked(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        token = request.path_params["token"]
        try:
            claims = read_link(token, kind)
            return await anyio.to_thread.run_sync(self._serve, kind, claims)
        except (Forbidden, NotFound) as exc:
            return _plain(403 if isinstance(exc, Forbidden) else 404, exc.message)
        except (MailkeepError, ValueError):
            return _plain(404, "Not found.")

    def _serve(self, kind: str, claims: dict[str, object]) -> Response:
        with Archive(self.data_dir, self.master, self.keys) as archive:
            raw, hit = linked_message(archive, self.master, claims)
        if kind == "source":
            return _download(raw, f"message-{str(claims['m']).replace(':', '-')}.eml")
        if kind == "part":
            found = part_bytes(raw, int(str(claims["i"])))
            if found is None:
                return _plain(404, "The message has no such part.")
            part, data = found
            return _download(data, part.name or f"part-{part.index}")
        shown = view(raw)
        remote = bool(claims.get("r"))
        html = safe_html(raw, shown.html or "", remote)
        doc = (f"<!doctype html><html><head><meta charset=\"utf-8\"><style>{BODY_STYLE}</style>"
               f"</head><body>{html}</body></html>")
        return Response(doc.encode(), 200, {**COMMON, "Cache-Control": "no-store",
                                            "Content-Security-Policy": _body_policy(remote)},
                        media_type="text/html; charset=utf-8")


def routes(data_dir: Path, master: MasterDB, keys: KeyRing) -> list[Route]:
    console = Console(data_dir, master, keys)
    return [Route("/", console.page, methods=["GET", "HEAD"]),
            Route("/console/static/{name}", console.page, methods=["GET", "HEAD"]),
            Route("/console/{kind:str}/{token:str}", console.linked, methods=["GET"])]
