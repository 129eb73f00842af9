"""On PYTHONPATH, this makes a process behave as a serving-only install (`pip install -e .`): the
training extras cannot be imported, as if they were not installed. Used by tests/test_newcomer.py."""

import importlib.abc
import sys

TRAINING = ("tensorflow", "tf_keras", "keras", "segmentation_models", "albumentations", "tf2onnx", "skimage")


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in TRAINING:
            raise ModuleNotFoundError(f"No module named {name!r} (a serving-only install)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
