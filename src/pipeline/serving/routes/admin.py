"""Mounted under /admin: tokens and the audit log."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import InvalidRequest, NotFound
from pipeline.serving.access import principal
from pipeline.serving.openapi import json_answer, operation, ref
from pipeline.serving.routes.handling import JSON_ERRORS, handled
from pipeline.stores.access import ROLES, AccessStore, AuditEntry, NewToken, Role, Token


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Who or what will use it.")
    roles: list[Role] = Field(min_length=1, description=f"Some of: {', '.join(ROLES)}.")


def admin_app(access: AccessStore) -> Starlette:
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

    return Starlette(
        routes=[
            Route("/tokens", handled(tokens, body=TokenRequest), methods=["GET", "POST"]),
            Route("/tokens/{token_id}", handled(revoke_token), methods=["DELETE"]),
            Route("/audit", handled(audit, query=("format", "image_id")), methods=["GET"]),
        ],
        exception_handlers=JSON_ERRORS,
    )


SCHEMAS = (Token, NewToken, AuditEntry, TokenRequest)
PATHS: dict[str, Any] = {
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
