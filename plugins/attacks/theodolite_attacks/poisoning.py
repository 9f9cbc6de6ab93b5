"""Backdoor poisoning through ART's PoisoningAttackBackdoor with its pattern trigger."""

from __future__ import annotations

from functools import partial
from typing import TypedDict

import numpy as np
from art.attacks.poisoning import PoisoningAttackBackdoor
from art.attacks.poisoning.perturbations import add_pattern_bd

from theodolite.sdk import resolve_seed, task
from theodolite.sdk.checks import bad_input


class Poisoned(TypedDict):
    x: np.ndarray
    y: np.ndarray
    poisoned: np.ndarray  # indices of the rows that carry the trigger


class Triggered(TypedDict):
    x: np.ndarray  # the rows of the test set outside the target class, with the trigger
    y: np.ndarray  # their true labels (none of them is the target)
    x_clean: np.ndarray  # the same rows without the trigger


def _images(
    task_name: str, x: np.ndarray, image_shape: list[int] | None
) -> tuple[np.ndarray, bool]:
    """``x`` as images (N, H, W) or channels-first (N, C, H, W), and whether channels come first."""
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        raise bad_input(
            task_name, "x", f"must be a non-empty array of rows, got {getattr(x, 'shape', x)}"
        )
    if image_shape is not None:
        if len(image_shape) not in (2, 3) or int(np.prod(image_shape)) != int(np.prod(x.shape[1:])):
            raise bad_input(
                task_name,
                "image_shape",
                f"{image_shape} does not hold a row of shape {list(x.shape[1:])}",
            )
        images = x.reshape(len(x), *image_shape)
    else:
        images = x
    if images.ndim == 3:
        return images, False
    if images.ndim == 4:
        return images, True
    raise bad_input(
        task_name,
        "x",
        f"has rows of shape {list(x.shape[1:])}: give images (H, W) or (C, H, W), "
        "or image_shape (e.g. [8, 8]) for flat rows",
    )


def trigger(distance: int, pixel_value: float, channels_first: bool):
    """ART's pattern trigger: four pixels set to ``pixel_value`` near the bottom-right corner."""
    return partial(
        add_pattern_bd, distance=distance, pixel_value=pixel_value, channels_first=channels_first
    )


def _check_trigger(task_name: str, images: np.ndarray, distance: int) -> None:
    height, width = images.shape[-2:]
    limit = min(height, width) - 2
    if not 1 <= distance <= limit:
        raise bad_input(
            task_name, "distance", f"must lie in [1, {limit}] for {height}x{width}, got {distance}"
        )


@task
def backdoor_poison(
    x: np.ndarray,
    y: np.ndarray,
    poison_fraction: float,
    target_label: int = 0,
    image_shape: list[int] | None = None,
    distance: int = 1,
    pixel_value: float = 1.0,
    seed: int | None = None,
) -> Poisoned:
    """Backdoor a training set (ART's PoisoningAttackBackdoor, pattern trigger): a random
    ``poison_fraction`` of the rows, drawn from classes other than the target, get the trigger
    and the label ``target_label``.

    Args:
        x: training inputs: images (N, H, W) or (N, C, H, W), or flat rows with image_shape
        y: their labels
        poison_fraction: share of all rows to poison, in (0, 1)
        target_label: the class a triggered input should be given
        image_shape: shape of one image for flat rows (e.g. [8, 8])
        distance: the trigger's distance from the bottom-right corner
        pixel_value: the trigger's pixel value
        seed: seed of the choice of rows (default: the step's seed)
    """
    name = "attacks.backdoor_poison"
    if not 0.0 < poison_fraction < 1.0:
        raise bad_input(name, "poison_fraction", f"must lie in (0, 1), got {poison_fraction}")
    images, channels_first = _images(name, x, image_shape)
    labels = np.asarray(y)
    if labels.shape != (len(x),):
        raise bad_input(name, "y", f"must hold one label per row ({len(x)}), got {labels.shape}")
    if target_label not in set(labels.tolist()):
        raise bad_input(name, "target_label", f"{target_label} is no label of y")
    _check_trigger(name, images, distance)
    candidates = np.flatnonzero(labels != target_label)
    count = int(round(poison_fraction * len(x)))
    if not 1 <= count <= len(candidates):
        raise bad_input(
            name,
            "poison_fraction",
            f"{poison_fraction} gives {count} rows, but 1 to "
            f"{len(candidates)} rows outside the target class can be poisoned",
        )
    rng = np.random.default_rng(resolve_seed(name, seed))
    chosen = np.sort(rng.choice(candidates, size=count, replace=False))
    attack = PoisoningAttackBackdoor(trigger(distance, pixel_value, channels_first))
    poisoned_x, poisoned_y = attack.poison(
        images[chosen], y=np.full(count, target_label, dtype=labels.dtype)
    )
    x_out = images.copy()
    y_out = labels.copy()
    x_out[chosen] = poisoned_x
    y_out[chosen] = poisoned_y
    return {"x": x_out.reshape(x.shape), "y": y_out, "poisoned": chosen}


@task
def backdoor_trigger(
    x: np.ndarray,
    y: np.ndarray,
    target_label: int = 0,
    image_shape: list[int] | None = None,
    distance: int = 1,
    pixel_value: float = 1.0,
) -> Triggered:
    """The rows of a test set whose class is not the target, with the backdoor's trigger: how
    often a backdoored model then says ``target_label`` is the attack's success rate.

    Args:
        x: test inputs, shaped as for attacks.backdoor_poison
        y: their true labels
        target_label: the backdoor's target class
        image_shape: shape of one image for flat rows (e.g. [8, 8])
        distance: the trigger's distance from the bottom-right corner
        pixel_value: the trigger's pixel value
    """
    name = "attacks.backdoor_trigger"
    images, channels_first = _images(name, x, image_shape)
    labels = np.asarray(y)
    if labels.shape != (len(x),):
        raise bad_input(name, "y", f"must hold one label per row ({len(x)}), got {labels.shape}")
    _check_trigger(name, images, distance)
    keep = labels != target_label
    if not keep.any():
        raise bad_input(name, "y", f"has no row outside the target class {target_label}")
    triggered = trigger(distance, pixel_value, channels_first)(images[keep])
    return {"x": triggered.reshape(-1, *x.shape[1:]), "y": labels[keep], "x_clean": x[keep]}
