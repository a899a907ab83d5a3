"""Tests for rbp.data.glyphs: printed characters from matplotlib's fonts."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from rbp.data._dataset import Dataset
from rbp.data.glyphs import DEFAULT_FONTS, glyphs, render_glyph

CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@pytest.fixture(scope="module")
def default_ds():
    return glyphs()


def small(**kwargs):
    """A cheap data set for determinism and argument tests."""
    kwargs = {"charset": "AB7", "n_per_font": 2, **kwargs}
    charset = kwargs.pop("charset")
    return glyphs(charset, **kwargs)


# --- shapes, types, ranges ------------------------------------------------------


def test_default_shapes_dtypes_and_ranges(default_ds):
    ds = default_ds
    assert isinstance(ds, Dataset)
    n_train_fonts, n_test_fonts = len(DEFAULT_FONTS) - 3, 3
    assert ds.X_train.shape == (n_train_fonts * 36 * 10, 256)
    assert ds.X_test.shape == (n_test_fonts * 36 * 10, 256)
    assert ds.y_train.shape == (ds.X_train.shape[0],)
    assert ds.y_test.shape == (ds.X_test.shape[0],)
    for X in (ds.X_train, ds.X_test):
        assert X.dtype == np.float64
        assert np.all(np.isfinite(X))
        assert X.min() >= 0.0 and X.max() <= 1.0
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64
    assert ds.classes == tuple(CHARSET)
    assert ds.image_shape == (16, 16)
    assert ds.n_classes == 36 and ds.n_features == 256


def test_every_class_present_in_both_splits(default_ds):
    for y in (default_ds.y_train, default_ds.y_test):
        counts = np.bincount(y, minlength=36)
        assert counts.shape == (36,)
        assert np.all(counts == counts[0]) and counts[0] > 0


def test_row_order_is_font_class_sample(default_ds):
    y = default_ds.y_test.reshape(3, 36, 10)
    assert np.all(y == np.arange(36)[None, :, None])


def test_ink_is_one_background_is_zero(default_ds):
    images = default_ds.X_train.reshape(-1, 16, 16)
    edges = [images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]]
    border = np.concatenate(edges, axis=1)
    assert border.mean() < 0.1  # mostly background (noise only)
    assert images.max(axis=(1, 2)).mean() > 0.8  # every glyph has saturated ink


# --- fonts and the split ----------------------------------------------------------


def test_at_least_ten_distinct_default_faces(default_ds):
    assert len(set(DEFAULT_FONTS)) == len(DEFAULT_FONTS) >= 10
    used = set(default_ds.meta["train_fonts"]) | set(default_ds.meta["test_fonts"])
    assert used == set(DEFAULT_FONTS)
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in DEFAULT_FONTS:
        assert (font_dir / f"{name}.ttf").is_file()


def test_test_fonts_are_disjoint_fixed_and_documented(default_ds):
    train, test = default_ds.meta["train_fonts"], default_ds.meta["test_fonts"]
    assert not set(train) & set(test)
    assert len(test) == 3 and len(train) == len(DEFAULT_FONTS) - 3
    # a serif, an italic and a typewriter (mono) face: the documented choice
    assert test == ("DejaVuSerif", "STIXGeneralItalic", "cmtt10")
    # not drawn from rng
    assert small(rng=123).meta["test_fonts"] == test


def test_split_by_font_rule_for_custom_fonts():
    cmtt = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "cmtt10.ttf"
    ds = small(fonts=["cmr10", "DejaVuSans.ttf", cmtt], n_test_fonts=1)
    assert ds.meta["train_fonts"] == ("DejaVuSans", "cmr10")
    assert ds.meta["test_fonts"] == ("cmtt10",)
    assert ds.X_train.shape == (2 * 3 * 2, 256) and ds.X_test.shape == (1 * 3 * 2, 256)


def test_n_test_fonts_moves_faces_but_not_samples():
    one = small(n_test_fonts=1)  # test face: cmtt10, last in sorted order
    three = small(n_test_fonts=3)
    assert one.meta["test_fonts"] == ("cmtt10",)
    np.testing.assert_array_equal(one.X_test, three.X_test[-6:])


# --- clean renderings ---------------------------------------------------------------


@pytest.mark.parametrize("font", DEFAULT_FONTS)
def test_clean_glyphs_are_nonempty_and_distinct(font):
    images = np.array([render_glyph(c, font).ravel() for c in CHARSET])
    assert images.shape == (36, 256)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.all(images.sum(axis=1) > 5.0)  # at least ~5 pixels of ink each
    assert np.all(images.max(axis=1) > 0.5)  # a thin "I" may straddle two pixels
    diff = np.abs(images[:, None, :] - images[None, :, :]).mean(axis=2)
    np.fill_diagonal(diff, np.inf)
    i, j = np.unravel_index(diff.argmin(), diff.shape)
    assert diff.min() > 0.01, f"{font}: {CHARSET[i]!r} and {CHARSET[j]!r} render alike"


def test_faces_differ_from_each_other():
    a = np.array([render_glyph(c, "DejaVuSans") for c in CHARSET])
    for font in DEFAULT_FONTS[1:]:
        b = np.array([render_glyph(c, font) for c in CHARSET])
        assert np.abs(a - b).mean() > 0.01, font


def test_no_distortion_gives_the_clean_renderings():
    ds = small(distortion=0.0, noise=0.0, stroke=False, n_test_fonts=1)
    clean = np.array([render_glyph(c, "cmtt10").ravel() for c in "AB7"])
    np.testing.assert_array_equal(ds.X_test, np.repeat(clean, 2, axis=0))


def test_other_sizes():
    ds = small(size=24)
    assert ds.X_train.shape[1] == 24 * 24 and ds.image_shape == (24, 24)
    assert render_glyph("Q", "cmr10", size=8).shape == (8, 8)


# --- randomness -----------------------------------------------------------------------


def test_same_seed_identical_arrays():
    a, b = small(rng=7), small(rng=np.random.default_rng(7))
    for name in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(small().X_train, small(rng=0).X_train)


def test_different_seed_different_arrays():
    a, b = small(rng=1), small(rng=2)
    assert not np.array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)


def test_uses_no_global_random_state():
    state = np.random.get_state()
    small()
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


# --- argument validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 4}, r"^size must be an integer >= 8, got 4$"),
        ({"size": 16.0}, "size"),
        ({"charset": ""}, "charset"),
        ({"charset": ["A", "B"]}, "charset"),
        ({"charset": "ABA"}, "charset.*repeat"),
        ({"charset": "A "}, "charset.*' '"),
        ({"charset": "A\u4e2d"}, "charset"),
        ({"n_per_font": 0}, "n_per_font"),
        ({"n_per_font": 2.5}, "n_per_font"),
        ({"n_test_fonts": 0}, "n_test_fonts"),
        ({"n_test_fonts": len(DEFAULT_FONTS)}, "n_test_fonts"),
        ({"fonts": ["cmr10"], "n_test_fonts": 1}, "n_test_fonts"),
        ({"noise": -0.1}, "noise"),
        ({"distortion": -1.0}, "distortion"),
        ({"distortion": float("nan")}, "distortion"),
        ({"fonts": "cmr10"}, "fonts"),
        ({"fonts": ["no-such-font"]}, "fonts"),
        ({"fonts": ["cmr10", "cmr10.ttf"]}, "fonts"),
        # a face without Latin letters
        ({"fonts": ["DejaVuSansDisplay", "cmr10"], "n_test_fonts": 1}, "charset"),
        ({"rng": "seed"}, "rng"),
        ({"stroke": "yes"}, "stroke"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_render_glyph_rejects_bad_input():
    with pytest.raises(ValueError, match="char"):
        render_glyph("AB")
    with pytest.raises(ValueError, match="size"):
        render_glyph("A", size=2)
    with pytest.raises(ValueError, match="fonts"):
        render_glyph("A", "no-such-font")
    with pytest.raises(ValueError, match="char.*'A'.*DejaVuSansDisplay"):
        render_glyph("A", "DejaVuSansDisplay")


# --- the task is learnable -------------------------------------------------------------------


def test_held_out_fonts_are_learnable(default_ds):
    neighbors = pytest.importorskip("sklearn.neighbors")
    ds = default_ds
    clf = neighbors.KNeighborsClassifier(n_neighbors=1).fit(ds.X_train, ds.y_train)
    accuracy = clf.score(ds.X_test, ds.y_test)
    # chance is 1/36; 1-NN on the train faces scores about 0.70 on unseen faces
    assert accuracy > 0.5, accuracy
