"""Batches for Keras, augmented with albumentations; images held in memory (uint8)."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import tf_keras

from pipeline.imaging.model_input import model_input


def classifier_augmentation() -> A.Compose:
    """The thesis' set: rotation up to 90 degrees, horizontal flip, brightness, shifts."""
    return A.Compose(
        [
            A.Affine(
                rotate=(-90, 90),
                translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.8,
            ),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=0.5),
        ]
    )


def segmenter_augmentation(size: int) -> A.Compose:
    """Random patches (from a whole-image view down to half its area, so patches and the served
    whole-image resize both appear), at most two of hue, brightness, contrast, saturation
    (factor <= 1.0), and flips applied to image and mask together."""
    return A.Compose(
        [
            A.RandomResizedCrop(size=(size, size), scale=(0.5, 1.0), ratio=(0.85, 1.15), p=1.0),
            A.SomeOf(
                [
                    A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=0, val_shift_limit=0),
                    A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0),
                    A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2),
                    A.HueSaturationValue(hue_shift_limit=0, sat_shift_limit=20, val_shift_limit=0),
                ],
                n=2,
                replace=False,
                p=0.8,
            ),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.2),
        ]
    )


class _ShuffledBatches(tf_keras.utils.Sequence):
    """Batches over `count` items, reshuffled after every epoch when `shuffle`."""

    def __init__(self, count: int, batch_size: int, *, shuffle: bool, seed: int):
        super().__init__()
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(count)
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.order) / self.batch_size))

    def chosen(self, index: int) -> np.ndarray:
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


class ClassifierBatches(_ShuffledBatches):
    def __init__(
        self, images: list[np.ndarray], labels: np.ndarray, *, batch_size: int, size: int, augment: bool, seed: int = 0
    ):
        self.images, self.labels, self.size = images, labels.astype(np.float32), size
        self.augmentation = classifier_augmentation() if augment else None
        super().__init__(len(images), batch_size, shuffle=augment, seed=seed)

    def __getitem__(self, index: int):
        chosen = self.chosen(index)
        batch = []
        for i in chosen:
            image = self.images[i]
            if self.augmentation is not None:
                image = self.augmentation(image=image)["image"]
            batch.append(model_input(image, self.size))
        return np.stack(batch).astype(np.float32), self.labels[chosen, None]


class SegmenterBatches(_ShuffledBatches):
    def __init__(self, images: list[np.ndarray], masks: list[np.ndarray], *, batch_size: int, size: int, seed: int = 0):
        self.images, self.masks = images, masks
        self.augmentation = segmenter_augmentation(size)
        super().__init__(len(images), batch_size, shuffle=True, seed=seed)

    def __getitem__(self, index: int):
        pairs = [self.augmentation(image=self.images[i], mask=self.masks[i]) for i in self.chosen(index)]
        images = np.stack([p["image"] for p in pairs]).astype(np.float32)
        masks = np.stack([p["mask"] for p in pairs]).astype(np.float32)[..., None]
        return images, masks
