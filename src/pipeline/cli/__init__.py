"""`gore-censor`: models, offline censoring, data sets, training, evaluation, active learning, hash lists.

One Typer app, a module per command group.
"""

from pipeline.cli.access import audit, tokens_app
from pipeline.cli.al import al_app
from pipeline.cli.censor import censor
from pipeline.cli.common import needs_training_extras, typer_group
from pipeline.cli.data import data_app
from pipeline.cli.evaluate import evaluate_app
from pipeline.cli.hashes import hashes_app
from pipeline.cli.jobs import job
from pipeline.cli.models import models_app
from pipeline.cli.train import train_app
from pipeline.cli.video import video
from pipeline.cli.web import index_app, users_app

app = typer_group("Gore classification and censoring.")
app.add_typer(models_app, name="models")
app.command()(censor)
app.command()(job)
app.command()(video)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(al_app, name="al")
app.add_typer(tokens_app, name="tokens")
app.command()(audit)
app.add_typer(users_app, name="users")
app.add_typer(index_app, name="index")
app.add_typer(hashes_app, name="hashes")


def main() -> None:
    """The `gore-censor` command: what needs the training extras says so when they are missing."""
    with needs_training_extras():
        app()


__all__ = ["app", "main"]
