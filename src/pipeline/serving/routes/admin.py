"""Mounted under /admin: tokens, the audit log, and hash lists of known content."""

from __future__ import annotations

import csv
import io
from typing import Any

from anyio import to_thread
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipeline.errors import InvalidRequest, NotFound
from pipeline.known.formats import FORMATS
from pipeline.known.lists import export_list, import_list
from pipeline.known.matcher import Matcher
from pipeline.serving.access import principal
from pipeline.serving.openapi import json_answer, operation, ref
from pipeline.serving.routes.handling import JSON_ERRORS, handled
from pipeline.stores.access import ROLES, AccessStore, AuditEntry, NewToken, Role, Token
from pipeline.stores.hash_lists import LABELS, NAME, HashList, HashLists


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what will use it.")
    roles: list[Role] = Field(min_length=1, description=f"Some of: {', '.join(ROLES)}.")


class HashListChange(BaseModel):
    enabled: bool = Field(
        strict=True, description="Matched against every upload (true) or kept but not matched (false)."
    )


class HashListImported(BaseModel):
    list: HashList
    imported: int = Field(description="PDQ hashes read from the file (repeats counted once in the list's size).")
    skipped: dict[str, int] = Field(description="Rows of other signal types, by type, left out.")


def _choice(request: Request, name: str, choices, default: str | None = None) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise InvalidRequest(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def admin_app(access: AccessStore, lists: HashLists, most_list_bytes: int, matcher: Matcher | None = None) -> Starlette:
    def changed() -> None:
        """This process matches with a change before answering it (other replicas: within the refresh)."""
        if matcher is not None:
            matcher.refresh(force=True)

    def tokens(request: Request, asked: TokenRequest | None = None):  # One route for both methods: 405s list both.
        if asked is None:
            return JSONResponse([t.model_dump(mode="json") for t in access.tokens()])
        made = access.create_token(asked.name, asked.roles, created_by=principal(request.scope).name)
        return JSONResponse(made.model_dump(mode="json"), status_code=201)

    def revoke_token(request: Request):
        raw = request.path_params["token_id"]
        try:
            token = access.revoke(int(raw), by=principal(request.scope).name)
        except (KeyError, ValueError):
            raise NotFound(f"no token {raw}") from None
        return JSONResponse(token.model_dump(mode="json"))

    def audit(request: Request):
        wanted = request.query_params.get("format", "json")
        if wanted not in ("json", "csv"):
            raise InvalidRequest(f"format must be json or csv, not {wanted!r}")
        entries = access.audit_entries(image_id=request.query_params.get("image_id"))
        if wanted == "json":
            return JSONResponse([e.model_dump(mode="json") for e in entries])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "actor", "action", "image_id", "detail"])
        writer.writerows(
            [[e.id, e.at.isoformat(), e.actor, e.action, e.image_id or "", e.detail or ""] for e in entries]
        )
        return Response(
            out.getvalue(), media_type="text/csv", headers={"Content-Disposition": "attachment; filename=audit.csv"}
        )

    async def hash_lists(request: Request):
        if request.method == "GET":
            return JSONResponse([found.model_dump(mode="json") for found in await to_thread.run_sync(lists.lists)])
        body = await request.body()  # BodyLimit has held it to GORE_HASH_LIST_MAX_BYTES.
        if len(body) > most_list_bytes:
            raise InvalidRequest(f"a hash list file is at most {most_list_bytes:,} bytes here; use the CLI")
        params = request.query_params
        label = _choice(request, "label", LABELS)
        format = _choice(request, "format", FORMATS, "signals")
        who = principal(request.scope).name

        def work() -> HashListImported:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest("a hash list file is UTF-8 text") from None
            made, read, skipped = import_list(
                lists,
                lambda: io.StringIO(text),
                name=params.get("name", ""),
                source=params.get("source", ""),
                label=label,
                format=format,
                by=who,
                tags=params.get("tags", "").split(","),
                enabled=params.get("enabled", "true") != "false",
            )
            access.audit(who, "hash list imported", None, f"{made.name}: {made.size} hashes, {made.label}")
            changed()
            return HashListImported(list=made, imported=read, skipped=skipped)

        made = await to_thread.run_sync(work)
        return JSONResponse(made.model_dump(mode="json"), status_code=201)

    def hash_list(request: Request, asked: HashListChange | None = None):
        name, who = request.path_params["name"], principal(request.scope).name
        if request.method == "DELETE":
            gone = lists.delete(name)
            access.audit(who, "hash list deleted", None, gone.name)
            changed()
            return JSONResponse(gone.model_dump(mode="json"))
        if asked is None:
            return JSONResponse(lists.get(name).model_dump(mode="json"))
        now = lists.set_enabled(name, asked.enabled)
        access.audit(who, "hash list " + ("enabled" if asked.enabled else "disabled"), None, now.name)
        changed()
        return JSONResponse(now.model_dump(mode="json"))

    def hash_list_export(request: Request):
        name = request.path_params["name"]
        format = _choice(request, "format", FORMATS, "hma-csv")
        label = request.query_params.get("label")
        if label is not None:
            label = _choice(request, "label", LABELS)
        lines = export_list(lists, name, format, label)  # A missing list is refused here, before any byte.
        access.audit(principal(request.scope).name, "hash list exported", None, f"{name} ({format})")
        filename = f"{name}.{'csv' if format == 'hma-csv' else 'txt'}"
        return StreamingResponse(  # Read from the tables as it is sent (in a thread): never held whole.
            lines, media_type="text/plain", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    return Starlette(
        routes=[
            Route("/hash-lists", handled(hash_lists, query=IMPORT_QUERY), methods=["GET", "POST"]),
            Route("/hash-lists/{name}", handled(hash_list, body=HashListChange), methods=["GET", "POST", "DELETE"]),
            Route("/hash-lists/{name}/export", handled(hash_list_export, query=("format", "label"))),
            Route("/tokens", handled(tokens, body=TokenRequest), methods=["GET", "POST"]),
            Route("/tokens/{token_id}", handled(revoke_token), methods=["DELETE"]),
            Route("/audit", handled(audit, query=("format", "image_id")), methods=["GET"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


IMPORT_QUERY = ("name", "source", "label", "format", "tags", "enabled")
SCHEMAS = (Token, NewToken, AuditEntry, TokenRequest, HashList, HashListChange, HashListImported)
LIST_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME}}
PATHS: dict[str, Any] = {
    "/admin/hash-lists": {
        "get": operation(
            "Every hash list of known content.",
            json_answer({"type": "array", "items": ref(HashList)}, "Lists."),
            errors=("401", "403"),
        ),
        "post": operation(
            "Import a hash list: the file is the body (signals: `pdq <hash>` lines; hma-csv: HMA's CSV).",
            json_answer(ref(HashListImported), "The list made."),
            parameters=[
                {"name": "name", "in": "query", "required": True, "schema": {"type": "string", "pattern": NAME}},
                {
                    "name": "source",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": "\\S", "maxLength": 200},
                },
                {"name": "label", "in": "query", "required": True, "schema": {"enum": list(LABELS)}},
                {"name": "format", "in": "query", "required": False, "schema": {"enum": list(FORMATS)}},
                {"name": "tags", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "enabled", "in": "query", "required": False, "schema": {"enum": ["true", "false"]}},
            ],
            request_body={
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string", "format": "hash-list"}}},
            },
            ok_status="201",
            errors=("400", "401", "403", "409", "413"),
        ),
    },
    "/admin/hash-lists/{name}": {
        "get": operation("One hash list.", json_answer(ref(HashList), "The list."), parameters=[LIST_NAME]),
        "post": operation(
            "Enable or disable a list.",
            json_answer(ref(HashList), "The list."),
            parameters=[LIST_NAME],
            body=HashListChange,
        ),
        "delete": operation("Delete a list and its hashes.", json_answer(ref(HashList), "It."), parameters=[LIST_NAME]),
    },
    "/admin/hash-lists/{name}/export": {
        "get": operation(
            "The list as a file (hma-csv, the default, or signals); label=gore: those hashes only.",
            {"description": "The file.", "content": {"text/plain": {"schema": {"type": "string"}}}},
            parameters=[
                LIST_NAME,
                {"name": "format", "in": "query", "required": False, "schema": {"enum": list(FORMATS)}},
                {"name": "label", "in": "query", "required": False, "schema": {"enum": list(LABELS)}},
            ],
            errors=("400", "401", "403", "404"),
        )
    },
    "/admin/tokens": {
        "get": operation(
            "Every token (never its secret).",
            json_answer({"type": "array", "items": ref(Token)}, "Tokens."),
            errors=("401", "403"),
        ),
        "post": operation(
            "A new token; its secret is in this answer only.",
            json_answer(ref(NewToken), "The token."),
            body=TokenRequest,
            ok_status="201",
            errors=("400", "401", "403"),
        ),
    },
    "/admin/tokens/{token_id}": {
        "delete": operation(
            "Revoke a token.",
            json_answer(ref(Token), "The revoked token."),
            parameters=[{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            errors=("401", "403", "404"),
        )
    },
    "/admin/audit": {
        "get": operation(
            "The audit log, newest first (JSON, or CSV with format=csv).",
            {
                "description": "Entries.",
                "content": {
                    "application/json": {"schema": {"type": "array", "items": ref(AuditEntry)}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            parameters=[
                {"name": "format", "in": "query", "required": False, "schema": {"enum": ["json", "csv"]}},
                {"name": "image_id", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            errors=("400", "401", "403"),
        )
    },
}
