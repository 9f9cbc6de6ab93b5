"""Data tasks: the digits in two views with seeded stratified splits, user data from CSV and
NPZ files (also through an MLflow artifact URI), and splits of any labelled rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from theodolite_data import tasks as data


def test_library_digits_views_and_splits() -> None:
    flat = data.digits(view="flat", seed=1)
    images = data.digits(view="image", seed=1)
    assert flat["x_train"].shape == (1347, 64) and images["x_train"].shape == (1347, 1, 8, 8)
    assert np.array_equal(flat["x_test"], images["x_test"].reshape(-1, 64))
    assert flat["x_train"].dtype == np.float32
    assert 0.0 <= flat["x_train"].min() and flat["x_train"].max() == 1.0
    assert images["image_shape"] == [1, 8, 8] and images["nb_classes"] == 10
    small = data.digits(train_size=100, test_size=50, seed=1)
    assert len(small["x_train"]) == 100 and len(small["x_test"]) == 50
    assert set(np.bincount(small["y_train"])) == {10}  # stratified: ten of each class
    again = data.digits(train_size=100, test_size=50, seed=1)
    assert np.array_equal(small["x_train"], again["x_train"])
    assert not np.array_equal(small["x_train"], data.digits(train_size=100, seed=2)["x_train"])
    assert np.array_equal(data.reshape(flat["x_test"], [1, 8, 8]), images["x_test"])
    legacy = data.load_digits(test_size=0.25, seed=0)
    assert np.array_equal(legacy["x_test"], data.digits(seed=0)["x_test"])


def test_library_user_data_from_csv_and_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 4)).astype(float)
    y = np.arange(40) % 2
    rows = "\n".join(
        ",".join(f"{v:g}" for v in [*row, label]) for row, label in zip(x, y, strict=True)
    )
    (tmp_path / "data.csv").write_text("a,b,c,d,label\n" + rows + "\n")
    loaded = data.load_file(str(tmp_path / "data.csv"), scale=255, test_size=10, seed=3)
    assert loaded["x_train"].shape == (30, 4) and loaded["x_test"].shape == (10, 4)
    assert loaded["x_train"].max() <= 1.0 and set(loaded["y_test"]) == {0, 1}
    together = np.concatenate([loaded["x_train"], loaded["x_test"]]) * 255
    assert sorted(map(tuple, together.round())) == sorted(map(tuple, x))

    np.savez(tmp_path / "images.npz", pixels=x.reshape(40, 1, 2, 2), classes=y)
    loaded = data.load_file(
        f"file://{tmp_path / 'images.npz'}",
        x_key="pixels",
        y_key="classes",
        scale=255,
        shape=[4],
        test_size=0.25,
    )
    assert loaded["x_train"].shape == (30, 4)


def test_library_split_any_rows() -> None:
    digits = data.digits(view="image", seed=0)
    parts = data.split(digits["x_test"], digits["y_test"], test_size=0.33, seed=0)
    assert len(parts["x_train"]) + len(parts["x_test"]) == len(digits["x_test"])
    assert parts["x_test"].shape[1:] == (1, 8, 8)
