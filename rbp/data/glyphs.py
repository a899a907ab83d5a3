"""Printed characters rendered from the fonts bundled with matplotlib.

An OCR task with no download: every glyph is drawn from a TrueType face that
ships inside matplotlib (``matplotlib/mpl-data/fonts/ttf``), centred and
scaled into a ``size x size`` box, then randomly distorted (affine warp,
stroke width, pixel noise). The test set is made of whole typefaces that the
training set never shows, so a score on it answers the real OCR question:
does the network generalise to a new font?

The clean rendering of each ``(font, character, size)`` is computed once and
cached; only the distortion is paid per sample.

Public names: :func:`glyphs`, :func:`render_glyph`, :data:`DEFAULT_FONTS`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from numbers import Integral
from pathlib import Path

import numpy as np
from scipy import ndimage

from rbp.core.params import as_generator
from rbp.core.validation import check_int, check_real
from rbp.data._dataset import Dataset

__all__ = ["glyphs", "render_glyph", "DEFAULT_FONTS"]

#: The default faces, by file stem in ``matplotlib/mpl-data/fonts/ttf``:
#: sans, sans mono, serif and italic faces from DejaVu, STIX and Computer
#: Modern. Each maps ``A-Z``, ``a-z`` and ``0-9`` at their Unicode code points
#: and renders the 36 characters ``A-Z0-9`` as distinct, non-empty glyphs (the
#: STIX "Siz"/"NonUni" faces, the "Display" faces, ``cmex10``, ``cmsy10`` and
#: ``cmmi10`` do not, and are left out).
_PREFERRED_FONTS = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "cmb10",
    "cmr10",
    "cmss10",
    "cmti10",
    "cmtt10",
)


def _bundled(stem: str) -> bool:
    """Whether the installed matplotlib ships this face (found without importing matplotlib)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    return (Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / f"{stem}.ttf").is_file()


#: The default faces: the 16 above that the installed matplotlib bundles (``cmti10`` only
#: ships with matplotlib >= 3.11; with an older one the default set has 15 faces).
DEFAULT_FONTS = tuple(f for f in _PREFERRED_FONTS if _bundled(f))

_SUPERSAMPLE = 4  # clean glyphs and their warps are computed on a 4x finer grid
_FIT = 0.75  # the longer side of a clean glyph spans this fraction of the box
_STROKE_STEPS = (-1, 0, 1, 2)  # stroke change, in units of _stroke_unit(size)
_MAX_ROTATION = np.deg2rad(10.0)  # all distortion ranges are per unit `distortion`
_MAX_LOG_SCALE = 0.10
_MAX_LOG_ASPECT = 0.05
_MAX_SHEAR = 0.15
_MAX_SHIFT = 1.5 / 16  # fraction of `size` (1.5 px at size 16)
_MIN_ERODED_INK = 0.5  # an erosion that removes more ink than this is skipped


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _resolve_fonts(fonts) -> list[tuple[str, str]]:
    """``fonts`` argument -> ``[(name, path), ...]`` sorted by name."""
    if fonts is None:
        fonts = DEFAULT_FONTS
    elif isinstance(fonts, (str, os.PathLike)) or not hasattr(fonts, "__iter__"):
        raise ValueError(
            "fonts must be None or a list of font names or .ttf/.otf paths, "
            f"got {type(fonts).__name__} {fonts!r}"
        )
    fonts = list(fonts)
    font_dir = _font_dir()
    resolved = {}
    for font in fonts:
        if not isinstance(font, (str, os.PathLike)):
            raise ValueError(
                f"fonts must contain font names or paths, got {type(font).__name__} {font!r}"
            )
        path = Path(font)
        if not path.is_file():
            stem = path.name[:-4] if path.name.lower().endswith((".ttf", ".otf")) else path.name
            path = font_dir / f"{stem}.ttf"
        if not path.is_file():
            available = sorted(p.stem for p in font_dir.glob("*.ttf"))
            raise ValueError(
                f"fonts: {str(font)!r} is neither a font file nor a face bundled with "
                f"matplotlib; expected a path or one of {available}"
            )
        name = path.stem
        if name in resolved:
            raise ValueError(f"fonts must name each face once, got {name!r} twice")
        resolved[name] = str(path.resolve())
    return sorted(resolved.items())


def _split_fonts(names: list[str], n_test_fonts: int) -> list[bool]:
    """Which of the name-sorted faces are test faces (fixed, not random).

    With ``n`` faces and ``k = n // n_test_fonts``, the test faces are those at
    sorted positions ``n-1, n-1-k, n-1-2k, ...``: spread over the families.
    For the default faces the positions are taken in the full default list,
    so the same faces are held out whatever faces an older matplotlib lacks.
    """
    reference = sorted(_PREFERRED_FONTS) if set(names) == set(DEFAULT_FONTS) else list(names)
    n = len(reference)
    step = n // n_test_fonts
    test = {reference[n - 1 - i * step] for i in range(n_test_fonts)}
    if len(test & set(names)) != n_test_fonts:  # a held-out default face is missing: fall back to positions
        reference, n = list(names), len(names)
        step = n // n_test_fonts
        test = {reference[n - 1 - i * step] for i in range(n_test_fonts)}
    return [name in test for name in names]


@lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(f"fonts: {path!r} is not a readable TrueType/OpenType font ({exc})") from None


def _check_renderable(char: str, name: str, path: str, argument: str = "charset") -> None:
    if ord(char) not in _charmap(path):
        raise ValueError(
            f"{argument} must contain only characters every font can render; "
            f"got {char!r}, which font {name!r} does not contain"
        )


@lru_cache(maxsize=None)
def _clean_supersampled(path: str, char: str, size: int) -> np.ndarray:
    """Anti-aliased ink coverage of ``char``, centred, on the fine grid.

    Shape ``(size * _SUPERSAMPLE,) * 2``, values in [0, 1]; all zeros when the
    glyph has no outline (a space). Read-only: it lives in the cache.
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    n = size * _SUPERSAMPLE
    image = np.zeros((n, n))
    try:
        outline = TextPath((0, 0), char, size=100, prop=FontProperties(fname=path))
    except AttributeError:  # matplotlib fails to build the path of an inkless glyph
        outline = None
    if outline is not None and len(outline.vertices):
        box = outline.get_extents()
        extent = max(box.width, box.height)
        if extent > 0:
            to_box = (
                Affine2D()
                .translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2)
                .scale(_FIT * n / extent)
                .translate(n / 2, n / 2)
            )
            renderer = RendererAgg(n, n, 72)
            gc = renderer.new_gc()
            gc.set_linewidth(0)
            gc.set_antialiased(True)
            renderer.draw_path(gc, outline, to_box, rgbFace=(0, 0, 0, 1))
            image = np.asarray(renderer.buffer_rgba())[..., 3] / 255.0
    image.setflags(write=False)
    return image


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius + radius / 2


def _stroke_unit(size: int) -> int:
    """Fine-grid pixels per stroke step: a quarter output pixel at size 16."""
    return max(1, round(size / 16))


@lru_cache(maxsize=None)
def _stroked(path: str, char: str, size: int, step: int) -> np.ndarray:
    """The clean glyph with its strokes grown (step > 0) or thinned (< 0)."""
    clean = _clean_supersampled(path, char, size)
    if step == 0:
        return clean
    footprint = _disk(abs(step) * _stroke_unit(size))
    if step > 0:
        image = ndimage.grey_dilation(clean, footprint=footprint)
    else:
        image = ndimage.grey_erosion(clean, footprint=footprint)
        if image.sum() < _MIN_ERODED_INK * clean.sum():  # hairline face: keep it
            image = clean
    image.setflags(write=False)
    return image


def _downsample(image: np.ndarray, size: int) -> np.ndarray:
    return image.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def render_glyph(char: str, font: str = "DejaVuSans", *, size: int = 16) -> np.ndarray:
    """The clean, undistorted rendering of one character, as :func:`glyphs` uses it.

    Parameters
    ----------
    char : str
        One character.
    font : str or path-like
        A face bundled with matplotlib, by file stem (see :data:`DEFAULT_FONTS`),
        or the path of a TrueType/OpenType file.
    size : int
        Side of the square image, in pixels (>= 8).

    Returns
    -------
    image : ndarray, shape (size, size)
        Ink coverage in [0, 1] (ink = 1), float64; row 0 is the top. The glyph's
        bounding box is centred and its longer side spans 3/4 of the image.

    Examples
    --------
    >>> from rbp.data.glyphs import render_glyph
    >>> img = render_glyph("A", "cmr10")
    >>> img.shape, bool(0.0 <= img.min() < img.max() <= 1.0)
    ((16, 16), True)
    """
    size = _check_size(size)
    if not isinstance(char, str) or len(char) != 1:
        raise ValueError(f"char must be a single character, got {char!r}")
    ((name, path),) = _resolve_fonts([font])
    _check_renderable(char, name, path, argument="char")
    return _downsample(_clean_supersampled(path, char, size), size)


def _check_size(size) -> int:
    return check_int(size, "size", minimum=8)


def _check_nonnegative(value, argument: str) -> float:
    return check_real(value, argument, low_inclusive=True)


def _affine(rng, shape, size, distortion):
    """Draw the per-sample warp parameters, one array of each, shaped ``shape``."""
    d = distortion
    return {
        "angle": rng.uniform(-1, 1, shape) * _MAX_ROTATION * d,
        "log_scale": rng.uniform(-1, 1, shape) * _MAX_LOG_SCALE * d,
        "log_aspect": rng.uniform(-1, 1, shape) * _MAX_LOG_ASPECT * d,
        "shear": rng.uniform(-1, 1, shape) * _MAX_SHEAR * d,
        "shift": rng.uniform(-1, 1, shape + (2,)) * _MAX_SHIFT * size * _SUPERSAMPLE * d,
    }


def _warp(image: np.ndarray, angle, log_scale, log_aspect, shear, shift) -> np.ndarray:
    """Apply the forward map ``A = R(angle) @ Shear @ diag(s*a, s/a)`` about the centre."""
    c, s = np.cos(angle), np.sin(angle)
    rotate = np.array([[c, -s], [s, c]])
    skew = np.array([[1.0, shear], [0.0, 1.0]])
    stretch = np.diag([np.exp(log_scale + log_aspect), np.exp(log_scale - log_aspect)])
    inverse = np.linalg.inv(rotate @ skew @ stretch)
    centre = (np.array(image.shape) - 1) / 2
    # ndimage maps each output coordinate o to the input coordinate inverse @ o + offset.
    offset = centre - inverse @ (centre + shift)
    return ndimage.affine_transform(image, inverse, offset=offset, order=1, mode="constant")


def glyphs(
    charset: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    *,
    size: int = 16,
    n_per_font: int = 10,
    fonts=None,
    n_test_fonts: int = 3,
    rng=None,
    distortion: float = 1.0,
    noise: float = 0.05,
    stroke: bool = True,
) -> Dataset:
    """Printed characters from matplotlib's bundled fonts, split by typeface.

    Parameters
    ----------
    charset : str
        The classes, one character each, no repeats; every font must contain
        each of them. Class index ``i`` is ``charset[i]``.
    size : int
        Images are ``size x size`` pixels (>= 8), flattened row-major.
    n_per_font : int
        Distorted samples of every character drawn from every font (>= 1).
    fonts : sequence of str or path-like, optional
        Faces to use, by file stem of a font bundled with matplotlib (for
        example ``"DejaVuSerif-Italic"``, ``"cmtt10"``) or by path of a
        TrueType/OpenType file. Default :data:`DEFAULT_FONTS` (16 faces with matplotlib >= 3.11, 15 before).
    n_test_fonts : int
        How many whole faces are held out for the test set
        (``1 <= n_test_fonts < len(fonts)``).
    rng : numpy.random.Generator or int, optional
        Source of all randomness; an int is a seed. ``None`` means seed 0, so
        the default call is reproducible.
    distortion : float
        Multiplies every range of the random affine warp (>= 0; 0 gives no
        warp). At 1: rotation up to +-10 degrees, scale +-10 %, aspect +-5 %,
        shear up to 0.15, shift up to +-1.5 px per axis at ``size=16``.
    noise : float
        Standard deviation of the Gaussian pixel noise (>= 0), added before
        clipping to [0, 1].
    stroke : bool
        Randomly thin or thicken the strokes (by -1/4, 0, +1/4 or +1/2 pixel on
        each side at ``size=16``; a thinning that would erase a hairline face
        is skipped).

    Returns
    -------
    Dataset
        ``X_train`` : ndarray, shape (n_train, size*size), float64 in [0, 1],
        ink = 1; ``y_train`` : ndarray of int64, shape (n_train,);
        ``X_test``, ``y_test`` likewise; ``classes = tuple(charset)``;
        ``image_shape = (size, size)``; ``meta`` with the arguments and the
        ``train_fonts`` / ``test_fonts`` names. ``n_train = n_train_fonts *
        len(charset) * n_per_font``.

    Raises
    ------
    ValueError
        For an invalid argument, naming it, before any sample is drawn.

    Notes
    -----
    Each sample is ``clip(downsample(warp(stroke(g))) + noise, 0, 1)`` where
    ``g`` is the clean glyph: its outline (``matplotlib.textpath.TextPath``)
    with its bounding box centred and its longer side scaled to 3/4 of the box,
    filled with anti-aliasing by the Agg rasteriser on a 4x finer grid and
    cached. Stroke changes (grey dilation/erosion) and the warp
    (``scipy.ndimage.affine_transform``, bilinear) act on the fine grid, which
    is then area-averaged down to ``size x size``.

    Split by typeface: faces are sorted by name (Python string order) and, with
    ``n`` faces and ``k = n // n_test_fonts``, the faces at sorted positions
    ``n-1, n-1-k, n-1-2k, ...`` form the test set. The choice depends only on
    the font list, never on ``rng``, so results compare across seeds. For the
    default fonts and ``n_test_fonts=3`` the test faces are ``DejaVuSerif``
    (serif), ``STIXGeneralItalic`` (italic) and ``cmtt10`` (typewriter mono).

    Every glyph is scaled to fit the box, so characters that differ only in
    size or case (``o``/``O``, ``l``/``I`` in a sans face) become the same
    image; the default charset has no such pair.

    Rows are ordered by face (sorted), then class, then sample, so that
    ``X_test.reshape(n_test_fonts, len(charset), n_per_font, -1)`` indexes
    face, class, sample; shuffle before per-sample or mini-batch training.
    Changing ``n_test_fonts`` moves faces between the splits but does not
    change any sample: the same seed always draws the same images.

    Examples
    --------
    >>> from rbp.data.glyphs import glyphs
    >>> ds = glyphs("AB", n_per_font=2)
    >>> ds.X_train.shape[1]
    256
    >>> n_train_faces = len(DEFAULT_FONTS) - 3   # 13 (12 with a matplotlib older than 3.11)
    >>> ds.X_train.shape[0] == n_train_faces * 2 * 2, ds.X_test.shape[0]  # 3 held-out faces x 2 classes x 2
    (True, 12)
    >>> ds.classes, ds.meta["test_fonts"]
    (('A', 'B'), ('DejaVuSerif', 'STIXGeneralItalic', 'cmtt10'))
    """
    # --- validate everything before any work -------------------------------------
    size = _check_size(size)
    if not isinstance(charset, str) or not charset:
        raise ValueError(f"charset must be a non-empty str, got {charset!r}")
    repeated = sorted({c for c in charset if charset.count(c) > 1})
    if repeated:
        raise ValueError(
            f"charset must not repeat a character, got {charset!r} repeating {''.join(repeated)!r}"
        )
    if not isinstance(n_per_font, Integral) or isinstance(n_per_font, bool) or n_per_font < 1:
        raise ValueError(f"n_per_font must be an integer >= 1, got {n_per_font!r}")
    n_per_font = int(n_per_font)
    distortion = _check_nonnegative(distortion, "distortion")
    noise = _check_nonnegative(noise, "noise")
    if not isinstance(stroke, (bool, np.bool_)):
        raise ValueError(f"stroke must be True or False, got {stroke!r}")
    faces = _resolve_fonts(fonts)
    if (
        not isinstance(n_test_fonts, Integral)
        or isinstance(n_test_fonts, bool)
        or not 1 <= n_test_fonts < len(faces)
    ):
        raise ValueError(
            f"n_test_fonts must be an integer with 1 <= n_test_fonts < {len(faces)} "
            f"(the number of fonts), got {n_test_fonts!r}"
        )
    seed = None if isinstance(rng, np.random.Generator) else (0 if rng is None else rng)
    gen = as_generator(0 if rng is None else rng)
    for name, path in faces:
        for char in charset:
            _check_renderable(char, name, path)
            if not _clean_supersampled(path, char, size).any():
                raise ValueError(
                    f"charset must contain only characters with visible ink; "
                    f"got {char!r}, which renders empty in font {name!r}"
                )

    # --- draw ----------------------------------------------------------------------
    n_faces, n_classes = len(faces), len(charset)
    shape = (n_faces, n_classes, n_per_font)
    warp = _affine(gen, shape, size, distortion)
    steps = gen.choice(_STROKE_STEPS, size=shape) if stroke else np.zeros(shape, int)
    X = np.empty(shape + (size * size,))
    for f, (_, path) in enumerate(faces):
        for c, char in enumerate(charset):
            for j in range(n_per_font):
                image = _stroked(path, char, size, int(steps[f, c, j]))
                if distortion > 0:
                    image = _warp(image, **{k: v[f, c, j] for k, v in warp.items()})
                X[f, c, j] = _downsample(image, size).ravel()
    if noise > 0:
        X += gen.normal(0.0, noise, X.shape)
    np.clip(X, 0.0, 1.0, out=X)

    is_test = np.array(_split_fonts([name for name, _ in faces], n_test_fonts))
    y = np.broadcast_to(np.arange(n_classes, dtype=np.int64)[:, None], shape[1:])

    def part(mask):
        n_rows = int(mask.sum()) * n_classes * n_per_font
        return X[mask].reshape(n_rows, size * size), np.tile(y.ravel(), int(mask.sum()))

    X_train, y_train = part(~is_test)
    X_test, y_test = part(is_test)
    meta = {
        "source": "printed glyphs rendered from fonts bundled with matplotlib",
        "generator": "rbp.data.glyphs",
        "charset": charset,
        "size": size,
        "n_per_font": n_per_font,
        "n_test_fonts": int(n_test_fonts),
        "distortion": distortion,
        "noise": noise,
        "stroke": bool(stroke),
        "seed": None if seed is None else int(seed),
        "train_fonts": tuple(name for (name, _), t in zip(faces, is_test) if not t),
        "test_fonts": tuple(name for (name, _), t in zip(faces, is_test) if t),
        "row_order": "font, class, sample",
    }
    return Dataset(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        classes=tuple(charset),
        image_shape=(size, size),
        meta=meta,
    )
