"""`gore-censor users ...` and `gore-censor index rebuild`: the web app's people and gallery index
from the shell (the first admin user is made here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.common import console, fail, service_tables, typer_group
from pipeline.config import get_settings

users_app = typer_group(
    "People who sign in to the web app (/app): create, list, disable, enable, unlock, set a password."
)
index_app = typer_group("The web gallery's index over the image records (index.db in the data directory).")
DataDirOption = Annotated[
    Path | None,
    typer.Option(help="The service's data directory; default: its stores ($GORE_DATABASE_URL, else $GORE_DATA_DIR)."),
]
SHELL = "gore-censor users (shell)"


def _people(data_dir: Path | None):
    from pipeline.stores.people import People

    return service_tables(People, data_dir)


def _audit(data_dir: Path | None, action: str, detail: str) -> None:
    from pipeline.stores.access import AccessStore

    service_tables(AccessStore, data_dir).audit(SHELL, action, detail=detail)


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as error:
            fail(f"cannot read {password_file}: {error.strerror or error}")
    return typer.prompt("Password (10 characters or more)", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The name they sign in with.")],
    role: Annotated[list[str], typer.Option(help="ingest, analyst, annotator or admin; repeat for several.")],
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file's first line; default: ask for it.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A new user. The password is asked for twice, hidden (or read from --password-file)."""
    from pipeline.stores.access import ROLES

    unknown = [r for r in role if r not in ROLES]
    if unknown:
        fail(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}")
    try:
        user = _people(data_dir).create_user(name, role, _password(password_file), created_by=SHELL)
    except ValueError as error:
        fail(str(error))
    _audit(data_dir, "user created", f"{user.name!r}: {', '.join(user.roles)}")
    console.print(f"user {user.id} {user.name!r} ({', '.join(user.roles)}): sign in at /app/signin")


@users_app.command("list")
def list_users(data_dir: DataDirOption = None) -> None:
    """Every user: id, name, roles, when made, whether disabled (never a password)."""
    table = Table("id", "name", "roles", "created", "by", "disabled")
    for user in _people(data_dir).users():
        disabled = user.disabled_at.isoformat(timespec="seconds") if user.disabled_at else ""
        table.add_row(
            str(user.id),
            user.name,
            ", ".join(user.roles),
            user.created_at.isoformat(timespec="seconds"),
            user.created_by,
            disabled,
        )
    Console(width=200).print(table)


def _set_disabled(name: str, disabled: bool, data_dir: Path | None) -> None:
    people = _people(data_dir)
    try:
        user = people.set_disabled(people.user_named(name).id, disabled)
    except KeyError:
        fail(f"no user {name!r}")
    _audit(data_dir, "user disabled" if disabled else "user enabled", repr(user.name))
    console.print(f"{'disabled' if disabled else 'enabled'} {user.name!r}")


@users_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="The user's name.")], data_dir: DataDirOption = None) -> None:
    """Disable a user: their sessions end at once and they cannot sign in."""
    _set_disabled(name, True, data_dir)


@users_app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="The user's name.")], data_dir: DataDirOption = None) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(name, False, data_dir)


@users_app.command("unlock")
def unlock(name: Annotated[str, typer.Argument(help="The user's name.")], data_dir: DataDirOption = None) -> None:
    """Let a user sign in again at once after too many wrong passwords (the lock lasts 15 minutes)."""
    people = _people(data_dir)
    try:
        people.unlock(people.user_named(name).id)
    except KeyError:
        fail(f"no user {name!r}")
    _audit(data_dir, "user unlocked", repr(name))
    console.print(f"unlocked {name!r}: they may sign in again")


@users_app.command("password")
def password(
    name: Annotated[str, typer.Argument(help="The user's name.")],
    password_file: Annotated[Path | None, typer.Option(help="Read the new password from this file.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password; every sign-in of theirs ends."""
    people = _people(data_dir)
    try:
        people.set_password(people.user_named(name).id, _password(password_file))
    except KeyError:
        fail(f"no user {name!r}")
    except ValueError as error:
        fail(str(error))
    _audit(data_dir, "password set", repr(name))
    console.print(f"password of {name!r} set; their sessions ended")


@index_app.command("rebuild")
def rebuild(data_dir: DataDirOption = None) -> None:
    """Rebuild the gallery index from every image record (safe while the service runs)."""
    from pipeline.stores import Shared, Stores

    settings = get_settings()
    stores = Stores.open(data_dir or settings.data_dir, settings.threshold, Shared.of(settings))
    count = stores.gallery.rebuild(stores.images)
    console.print(f"indexed {count:,} image record(s) into {stores.gallery.path}")
