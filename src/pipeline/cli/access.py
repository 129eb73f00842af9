"""`gore-censor tokens ...` and `gore-censor audit`: access control from the shell (the admin's seat)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.common import console, fail, service_tables, typer_group

tokens_app = typer_group("API tokens of the service: create, list, revoke (stored hashed in the data directory).")
DataDirOption = Annotated[
    Path | None,
    typer.Option(help="The service's data directory; default: its stores ($GORE_DATABASE_URL, else $GORE_DATA_DIR)."),
]


def _store(data_dir: Path | None):
    from pipeline.stores.access import AccessStore

    return service_tables(AccessStore, data_dir)


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what will use the token.")],
    role: Annotated[list[str], typer.Option(help="ingest, analyst, annotator or admin; repeat for several.")],
    data_dir: DataDirOption = None,
) -> None:
    """A new token; its secret is printed once, on standard output."""
    from pipeline.stores.access import ROLES

    unknown = [r for r in role if r not in ROLES]
    if unknown:
        fail(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}")
    made = _store(data_dir).create_token(name, role, created_by="gore-censor tokens (shell)")
    console.print(f"token {made.token.id} {name!r} ({', '.join(made.token.roles)}); the secret is shown once:")
    print(made.secret)


@tokens_app.command("list")
def list_tokens(data_dir: DataDirOption = None) -> None:
    """Every token: id, name, roles, when made, whether revoked (never a secret)."""
    table = Table("id", "name", "roles", "created", "by", "revoked")
    for token in _store(data_dir).tokens():
        revoked = token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else ""
        table.add_row(
            str(token.id),
            token.name,
            ", ".join(token.roles),
            token.created_at.isoformat(timespec="seconds"),
            token.created_by,
            revoked,
        )
    Console(width=200).print(table)


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `tokens list`).")], data_dir: DataDirOption = None
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    try:
        token = _store(data_dir).revoke(token_id, by="gore-censor tokens (shell)")
    except KeyError:
        fail(f"no token {token_id}")
    console.print(f"revoked token {token.id} {token.name!r}")


def audit(
    image: Annotated[str | None, typer.Option(help="Only entries about this image id.")] = None,
    limit: Annotated[int, typer.Option(help="Most entries, newest first.")] = 1000,
    data_dir: DataDirOption = None,
) -> None:
    """The audit log as CSV on standard output: who did what to which image, and when."""
    writer = csv.writer(sys.stdout)
    writer.writerow(["id", "at", "actor", "action", "image_id", "detail"])
    for e in _store(data_dir).audit_entries(image_id=image, limit=limit):
        writer.writerow([e.id, e.at.isoformat(), e.actor, e.action, e.image_id or "", e.detail or ""])
