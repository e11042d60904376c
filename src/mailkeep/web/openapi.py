"""The OpenAPI 3.1 description of the server's two HTTP APIs, projected from the function
catalog as get-metadata and docs/functions.md are: the Administration API (every function as
`POST /api/invoke/<Name>` with form fields, get-status, cancel-async, get-metadata) and the
console API (`/mcapi`: login, logout and every function declared with a console route).

admin_api.py and mcapi.py serve it to those who may call the API (see docs/mcapi.md);
`python -m mailkeep.web.openapi` prints the same document (`make docs` writes docs/openapi.json).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from typing import Any

from mailkeep import __version__
from mailkeep.core.fields import Field
from mailkeep.error_table import MCAPI_CODES
from mailkeep.functions import REGISTRY, Function
from mailkeep.functions.registry import McRoute

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TEXT = "text/plain"
ADMIN_TAG, CONSOLE_TAG = "Administration API", "console API"
BASIC: list[dict[str, list[str]]] = [{"basicAuth": []}]
SESSION: list[dict[str, list[str]]] = [{"sessionId": []}]
Schema = dict[str, Any]

# JSON Schema types of a field's kinds: as a form field or query parameter carries it (text
# parsed by the field), and as a JSON body carries it.
FORM_TYPES = {"string": "string", "list": "string", "int": "integer", "number": "number",
              "bool": "boolean", "json": "string"}
NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"


def _field_schema(a: Field, in_json: bool) -> Schema:
    out: Schema = {}
    if in_json and a.kind == "json":
        pass  # any JSON value
    elif in_json and a.kind == "list":
        item: Schema = {"type": "string"}
        if a.choices:
            item["enum"] = list(a.choices)
        out.update(type="array", items=item)
    else:
        out["type"] = FORM_TYPES[a.kind]
        if a.kind == "json":
            out["contentMediaType"] = JSON
        if a.kind == "string" and a.choices:
            out["enum"] = list(a.choices)
    if a.low is not None:
        out["minimum"] = a.low
    if a.high is not None:
        out["maximum"] = a.high
    if a.max_length is not None:
        out["maxLength"] = a.max_length
    if a.format == "line":
        out["pattern"] = NO_CONTROL
    if a.secret:
        out.update(format="password", writeOnly=True)
    if a.default is not None:
        out["default"] = a.default
    if a.nullable and in_json and "type" in out:
        out["type"] = [out["type"], "null"]
    if a.nullable and "enum" in out:
        out["enum"].append(None if in_json else "")
    out["description"] = _field_text(a, in_json)
    return out


def _field_text(a: Field, in_json: bool) -> str:
    text = a.description
    if a.kind == "list" and not in_json:
        text += " A comma-separated list."
    if a.choices:
        text += " Matched without regard to case."
    if a.nullable and not in_json:
        text += " Empty means null."
    return text.strip()


def _required(fn: Function) -> list[str]:
    return [a.name for a in fn.args if not a.nullable and a.default is None]


def _object(fn: Function, in_json: bool) -> Schema:
    out: Schema = {"type": "object",
                   "properties": {a.name: _field_schema(a, in_json) for a in fn.args},
                   "additionalProperties": False}
    if _required(fn):
        out["required"] = _required(fn)
    return out


def _summary(fn: Function) -> str:
    return fn.description.split(". ", 1)[0].rstrip(".")


def _description(fn: Function) -> str:
    lines = [fn.description, "", f"Console roles: {', '.join(fn.roles)}."]
    if fn.long_running:
        lines.append("Long-running: may answer `running` with a token; follow it with "
                     "get-status.")
    lines.append(f"Result: `{fn.result}`")
    return "\n".join(lines)


def _text(description: str) -> Schema:
    return {"description": description, "content": {TEXT: {"schema": {"type": "string"}}}}


def _ref(name: str, kind: str = "responses") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- the Administration API ----------------------------------------------------------------------
def _api_responses(extra: dict[str, Schema] | None = None) -> Schema:
    return {"200": _ref("Envelope"), "401": _ref("Unauthorized"), "403": _ref("ApiForbidden"),
            "408": _ref("Refused"), "413": _ref("Refused"), **(extra or {})}


def _form_body(schema: Schema, required: bool) -> Schema:
    return {"required": required,
            "content": {FORM: {"schema": schema}, MULTIPART: {"schema": schema}}}


def _invoke(fn: Function, schemas: dict[str, Schema]) -> Schema:
    """The operation of a function; its arguments become the schema <Name>Arguments."""
    op: Schema = {"tags": [ADMIN_TAG], "operationId": fn.name, "summary": _summary(fn),
                  "description": _description(fn), "security": BASIC}
    if fn.args:
        args = schemas[f"{fn.name}Arguments"] = _object(fn, in_json=False)
        op["requestBody"] = _form_body(_ref(f"{fn.name}Arguments", "schemas"),
                                       "required" in args)
    op["responses"] = _api_responses()
    return op


def _integer(description: str) -> Schema:
    return {"type": "integer", "description": description}


def _protocol_paths() -> dict[str, Schema]:
    token = {"type": "string", "description": "The token a running call answered with."}
    status = {"type": "object", "required": ["token"], "additionalProperties": False,
              "properties": {
                  "token": token,
                  "lastKnownStatusVersion": _integer(
                      "The statusVersion last seen (-1: none); an answer comes at once when "
                      "the process has a newer one."),
                  "millisecondsTimeout": _integer(
                      "How long to wait for a newer status before answering with the current "
                      "one.")}}
    cancel = {"type": "object", "required": ["token"], "additionalProperties": False,
              "properties": {"token": token}}
    unknown = {"404": _text("Unknown or expired token.")}
    metadata = {"tags": [ADMIN_TAG], "summary": "Every function with its arguments",
                "description": "A bare JSON array (no envelope, no BOM): each function's "
                "name, arguments (name, type, nullable, default), description, result, "
                "whether it runs long and its console roles; then get-status, cancel-async "
                "and get-metadata themselves.", "security": BASIC,
                "responses": _api_responses({"200": {
                    "description": "The functions.",
                    "content": {JSON: {"schema": {"type": "array", "items": {
                        "type": "object", "required": ["name", "args"]}}}}}})}
    return {
        "/api/get-status": {"post": {
            "tags": [ADMIN_TAG], "operationId": "get-status",
            "summary": "The status of a running call",
            "description": "The envelope of the process the token names, with the log lines "
                           "added after lastKnownStatusVersion.",
            "security": BASIC, "requestBody": _form_body(status, True),
            "responses": _api_responses(unknown)}},
        "/api/cancel-async": {"post": {
            "tags": [ADMIN_TAG], "operationId": "cancel-async",
            "summary": "Ask a running call to stop",
            "description": "It ends as cancelled at its next safe point.",
            "security": BASIC, "requestBody": _form_body(cancel, True),
            "responses": _api_responses(unknown)}},
        "/api/get-metadata": {
            "get": {**metadata, "operationId": "get-metadata"},
            "post": {**metadata, "operationId": "get-metadata-post"}},
        "/api/openapi.json": {"get": {
            "tags": [ADMIN_TAG], "operationId": "openapi-api",
            "summary": "This description",
            "description": "For administrators, like get-metadata: the description of both "
                           "APIs.", "security": BASIC,
            "responses": _api_responses({"200": {"description": "An OpenAPI document.",
                                                 "content": {JSON: {"schema": {
                                                     "type": "object"}}}}})}},
    }


# -- the console API -----------------------------------------------------------------------------
def _mc_error(codes: list[int]) -> dict[str, Schema]:
    by_status: dict[int, list[int]] = {}
    for code in codes:
        by_status.setdefault(MCAPI_CODES[code][0], []).append(code)
    return {str(status): {
        "description": "; ".join(f"{c}: {MCAPI_CODES[c][1]}" for c in found) + ".",
        "content": {JSON: {"schema": _ref("McError", "schemas")}}}
        for status, found in sorted(by_status.items())}


# The request refused before it was read: its body too large (413) or too slow (408).
REFUSED = [c for c, (status, _) in MCAPI_CODES.items() if status in (408, 413)]
CALL_CODES = [c for c in MCAPI_CODES if not 2000 <= c < 3000]  # login's are login's only
LOGIN_CODES = [1001, 1002, 1005, *REFUSED, *(c for c in MCAPI_CODES if 2000 <= c < 3000), 5000]


def _mc_success(description: str, data: Schema | None = None) -> Schema:
    schema: Schema = _ref("McSuccess", "schemas")
    if data is not None:
        schema = {"allOf": [schema, {"properties": {"result": {"properties": {"data": data}}}}]}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _mc_body(fn: Function, route: McRoute) -> Schema | None:
    if route.arg:
        arg = next(a for a in fn.args if a.name == route.arg)
        inner: Schema = {"type": "object", "description": arg.description}
    elif fn.args:
        inner = _object(fn, in_json=True)
    else:
        return None
    if route.body:
        inner = {"type": "object", "required": [route.body],
                 "properties": {route.body: inner}}
    return {"required": "required" in inner, "content": {JSON: {"schema": inner}}}


def _mc_data(route: McRoute) -> str:
    if route.result == "":
        return "data is {}."
    if route.result:
        return f"data holds the result under {route.result}."
    return "data is the result ({} for none)."


def _mc_call(fn: Function, route: McRoute) -> Schema:
    op: Schema = {"tags": [CONSOLE_TAG], "operationId": "mcapi_" + re.sub(
        r"[^A-Za-z0-9]+", "_", route.path), "summary": _summary(fn),
        "description": f"{fn.name} of the function catalog. {_mc_data(route)}\n\n"
                       + _description(fn), "security": SESSION}
    if route.method == "GET":
        op["parameters"] = [{"name": a.name, "in": "query",
                             "required": a.name in _required(fn),
                             "schema": _field_schema(a, in_json=False)} for a in fn.args]
    else:
        body = _mc_body(fn, route)
        if body is not None:
            op["requestBody"] = body
    op["responses"] = {"200": _mc_success("Succeeded."), **_mc_error(CALL_CODES)}
    return op


def _mc_auth_paths() -> dict[str, Schema]:
    login = {"type": "object", "required": ["userName", "password"], "properties": {
        "userName": {"type": "string", "minLength": 1},
        "password": {"type": "string", "format": "password", "writeOnly": True},
        "timeout": {"type": "integer", "minimum": 1, "maximum": 10080, "default": 30,
                    "description": "Idle minutes before the session ends."},
        "getRole": {"type": "boolean", "description": "Answer the session's role too."},
        "code": {"type": "string", "description": "The one-time code (or a recovery code) "
                 "of an account with multi-factor login."}}}
    session = {"type": "object", "required": ["sessionId", "serverName", "serverId"],
               "properties": {"sessionId": {"type": "string", "pattern": "^[0-9A-F]{32}$"},
                              "serverName": {"type": "string"},
                              "serverId": {"type": "string"},
                              "role": {"type": "string",
                                       "enum": ["administrator", "developer", "operator"]}}}
    return {
        "/mcapi/auth/login": {"post": {
            "tags": [CONSOLE_TAG], "operationId": "mcapi_auth_login", "summary": "Log in",
            "description": "Opens a session; send its id in X-Fs-SessionId (or "
                           "X-As-SessionId). Failed logins are throttled per account and "
                           "address.", "security": [],
            "requestBody": {"required": True, "content": {JSON: {"schema": login}}},
            "responses": {"200": _mc_success("Logged in.", session),
                          **_mc_error(LOGIN_CODES)}}},
        "/mcapi/auth/logout": {"post": {
            "tags": [CONSOLE_TAG], "operationId": "mcapi_auth_logout",
            "summary": "Log out", "description": "Ends the session.", "security": SESSION,
            "responses": {"200": _mc_success("Logged out."),
                          **_mc_error([1005, *REFUSED, 3001])}}},
        "/mcapi/openapi.json": {"get": {
            "tags": [CONSOLE_TAG], "operationId": "openapi-mcapi",
            "summary": "This description",
            "description": "For an administrator's session: the description of both "
                           "APIs (also while the Administration API is off).",
            "security": SESSION,
            "responses": {"200": {"description": "An OpenAPI document.",
                                  "content": {JSON: {"schema": {"type": "object"}}}},
                          **_mc_error([1005, *REFUSED, 3001, 3002])}}},
    }


# -- the document --------------------------------------------------------------------------------
def _components(arguments: dict[str, Schema]) -> Schema:
    nullable_text = {"type": ["string", "null"]}
    envelope = {
        "type": "object", "additionalProperties": False,
        "required": ["error", "token", "statusVersion", "statusCode", "percentProgress",
                     "statusText", "result", "logOutput"],
        "properties": {
            "error": {"type": ["object", "null"], "required": ["message", "details"],
                      "properties": {"message": {"type": "string"},
                                     "details": {"type": "string"}}},
            "token": nullable_text,
            "statusVersion": {"type": "integer"},
            "statusCode": {"enum": ["running", "succeeded", "failed", "cancelled"]},
            "percentProgress": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "statusText": nullable_text,
            "result": {"description": "The function's result when it succeeded (its shape is "
                                      "in the operation's description), else null."},
            "logOutput": nullable_text}}
    return {
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic", "description":
                          "An administrator whose login privileges include api (or one of "
                          "its app passwords)."},
            "sessionId": {"type": "apiKey", "in": "header", "name": "X-Fs-SessionId",
                          "description": "The sessionId of /mcapi/auth/login (X-As-SessionId "
                          "is read too)."}},
        "schemas": {
            "Envelope": envelope,
            "McSuccess": {"type": "object", "required": ["result"], "properties": {"result": {
                "type": "object", "required": ["status", "data"],
                "properties": {"status": {"const": "success"}, "data": {}}}}},
            "McError": {"type": "object", "required": ["result"], "properties": {"result": {
                "type": "object", "required": ["status", "code", "message"],
                "properties": {"status": {"const": "error"},
                               "code": {"enum": sorted(MCAPI_CODES)},
                               "message": {"type": "string"}}}}},
            **arguments},
        "responses": {
            "Envelope": {"description": "The envelope (UTF-8 with a BOM): statusCode "
                         "succeeded with the result, failed with the error, or running with "
                         "a token to follow.",
                         "content": {JSON: {"schema": _ref("Envelope", "schemas")}}},
            "Unauthorized": _text("No, wrong or locked-out credentials (WWW-Authenticate "
                                  "asks for Basic)."),
            "Refused": {"description": "The request body was larger than the server takes "
                        "(413) or did not arrive in time (408): the envelope of a failed call.",
                        "content": {JSON: {"schema": _ref("Envelope", "schemas")}}},
            "ApiForbidden": _text("The Administration API is disabled, the account is no "
                                  "administrator or may not log in this way, or it still has "
                                  "its initial password and the client is not this machine."),
        },
    }


@functools.cache
def document() -> Schema:
    arguments: dict[str, Schema] = {}
    paths: dict[str, Schema] = {f"/api/invoke/{fn.name}": {"post": _invoke(fn, arguments)}
                                for fn in REGISTRY}
    paths.update(_protocol_paths())
    paths.update(_mc_auth_paths())
    for fn in REGISTRY:
        if fn.mcapi is not None:
            paths[f"/mcapi/{fn.mcapi.path}"] = {fn.mcapi.method.lower(): _mc_call(fn, fn.mcapi)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailkeep", "version": __version__,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
                 "description": "The Administration API (MailStore-compatible: Basic "
                 "authentication, form fields, an eight-key envelope) and the management "
                 "console's API (JSON, a session header), generated from the function "
                 "catalog. docs/functions.md and docs/mcapi.md tell the rest."},
        "tags": [{"name": ADMIN_TAG, "description": "/api: every catalog function, for "
                  "administrators; off until enabled (serve --enable-api)."},
                 {"name": CONSOLE_TAG, "description": "/mcapi: for accounts with a console "
                  "role; always on."}],
        "paths": dict(sorted(paths.items())),
        "components": _components(arguments),
    }


@functools.cache
def document_bytes() -> bytes:
    return (json.dumps(document(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


if __name__ == "__main__":
    sys.stdout.buffer.write(document_bytes())
