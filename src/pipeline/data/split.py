"""Stratified train / validation / test splits, reproducible by seed (scikit-learn)."""

from __future__ import annotations

from collections import Counter

from sklearn.model_selection import train_test_split

from pipeline.data.manifest import ATTRIBUTES, Dataset, Sample


def stratum(sample: Sample) -> str:
    """The label and the region attributes: splits keep their mix in every part."""
    return ("gore" if sample.gore else "clean") + "".join(f"+{a}" for a in ATTRIBUTES if sample.attributes.get(a))


def split_dataset(dataset: Dataset, *, seed: int = 0, validation: float = 0.15, test: float = 0.15) -> Dataset:
    """Assign every sample a split. Strata too small to divide fall back to the gore label."""
    if not 0 < validation + test < 1:
        raise ValueError("validation + test must be between 0 and 1")
    indices = list(range(len(dataset.samples)))
    keys = [stratum(s) for s in dataset.samples]
    counts = Counter(keys)
    keys = [k if counts[k] >= 3 else ("gore" if dataset.samples[i].gore else "clean") for i, k in enumerate(keys)]
    train, rest = train_test_split(indices, test_size=validation + test, random_state=seed, stratify=_usable(keys, indices))
    rest_keys = [keys[i] for i in rest]
    validation_part, test_part = train_test_split(
        rest, test_size=test / (validation + test), random_state=seed, stratify=_usable(rest_keys, rest)
    )
    names = {**dict.fromkeys(train, "train"), **dict.fromkeys(validation_part, "validation"), **dict.fromkeys(test_part, "test")}
    samples = [s.model_copy(update={"split": names[i]}) for i, s in enumerate(dataset.samples)]
    return dataset.model_copy(update={"samples": samples})


def _usable(keys: list[str], indices: list[int]) -> list[str] | None:
    """scikit-learn needs two members per stratum; without them, split at random."""
    counts = Counter(keys)
    return keys if min(counts.values()) >= 2 else None
