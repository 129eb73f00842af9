"""Before a model service starts its workers: can its model be served at all?

Run in a child process, because a worker whose model fails to load is restarted forever by
BentoML, and loading in the `bentoml serve` process itself would keep a copy of the model there.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from pipeline.errors import ModelNotReady
from pipeline.model_store.loading import servable_info, stored_model
from pipeline.model_store.metadata import ModelInfo


@dataclass(frozen=True)
class Preflight:
    tag: str
    allow_untrained: bool
    timeout_s: float
    backend: str = "auto"

    def run(self) -> ModelInfo:
        info = servable_info(stored_model(self.tag), allow_untrained=self.allow_untrained)
        command = [sys.executable, "-m", "pipeline.cli", "models", "check", info.tag, "--backend", self.backend]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise ModelNotReady(
                f"{info.tag}: loading it took over {self.timeout_s:.0f} s (GORE_PREFLIGHT_TIMEOUT_S)"
            ) from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise ModelNotReady(f"{info.tag} cannot be served: {lines[-1].removeprefix('error: ')}")
        return info
