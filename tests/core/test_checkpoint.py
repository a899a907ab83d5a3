"""Checkpoints and parameter files (rbp.core.checkpoint): exact round trips,
loud refusal of every kind of bad file (executing nothing), and atomic writes.

Hostile files are crafted by hand here (``numpy.savez``, ``zipfile``, the
``.npy`` format functions), never with rbp's own writer, so the tests do not
share the code under test's assumptions.
"""

import io
import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest

import rbp
from rbp.core import checkpoint as C
from rbp.core import optimizers as O
from rbp.core.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_params,
    save_checkpoint,
    save_params,
)

N_PARAMS = 4096  # large enough that the middle of a file lies inside theta's bytes


# -- helpers ---------------------------------------------------------------------------------------


def _meta(**overrides):
    info = {
        "format": "rbp-checkpoint", "version": FORMAT_VERSION, "epoch": 3, "n_params": N_PARAMS,
        "history": {}, "meta": {},
    }
    info.update(overrides)
    return np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)


def _npy_bytes(array, *, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _trained_state(name, theta):
    """A non-trivial state of optimizer ``name``: a few updates with varying gradients."""
    opt = O.OPTIMIZERS[name]()
    state = opt.init(theta)
    gen = np.random.default_rng(7)
    for _ in range(3):
        _, state = opt.update(gen.normal(size=theta.shape).astype(theta.dtype), state, theta)
    return opt, state


def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def good(tmp_path):
    """A valid checkpoint file, its bytes and theta."""
    theta = np.random.default_rng(0).normal(size=N_PARAMS)
    path = save_checkpoint(tmp_path / "good.npz", theta, rng=np.random.default_rng(1), epoch=3,
                           history={"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4]})
    return path, path.read_bytes(), theta


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_params_round_trip_exact(tmp_path, dtype):
    theta = np.random.default_rng(0).normal(size=37).astype(dtype)
    theta[0] = np.nextafter(dtype(1), dtype(2))  # last-bit values survive
    meta = {"model": "MLP([3, 5, 2])", "seed": 4, "nested": {"a": [1, 2.5, None]}}
    path = save_params(tmp_path / "model.npz", theta, meta=meta)
    loaded, loaded_meta = load_params(path, n_params=37)
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, theta)
    assert loaded_meta == meta


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_checkpoint_round_trip_every_optimizer(tmp_path, name):
    theta = np.random.default_rng(2).normal(size=11)
    opt, state = _trained_state(name, theta)
    gen = np.random.default_rng(5)
    gen.normal(size=3)  # advance it: the saved state is not the seed's
    history = {"epoch": [1, 2], "loss": [0.75, float("nan")], "val_loss": [1.0, 0.5]}
    path = save_checkpoint(tmp_path / "ck.npz", theta, optimizer_state=state, rng=gen, epoch=2, history=history,
                           meta={"note": "x"})

    ck = load_checkpoint(path, n_params=theta.size, optimizer_state=opt.init(theta))

    np.testing.assert_array_equal(ck["theta"], theta)
    assert ck["epoch"] == 2
    assert ck["meta"] == {"note": "x"}
    assert ck["history"]["epoch"] == [1, 2] and ck["history"]["val_loss"] == [1.0, 0.5]
    assert ck["history"]["loss"][0] == 0.75 and np.isnan(ck["history"]["loss"][1])
    restored = ck["optimizer_state"]
    assert type(restored) is type(state)
    assert restored._fields == state._fields
    for field, want, got in zip(state._fields, state, restored):
        assert type(got) is type(want), field
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype and got.shape == want.shape, field
            np.testing.assert_array_equal(got, want, err_msg=field)
        else:
            assert got == want, field
    # The generator continues exactly where the saved one did.
    np.testing.assert_array_equal(ck["rng"].normal(size=5), gen.normal(size=5))
    np.testing.assert_array_equal(ck["rng"].permutation(50), gen.permutation(50))


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_restored_optimizer_continues_bit_identically(tmp_path, name):
    theta = np.random.default_rng(3).normal(size=9)
    opt, state = _trained_state(name, theta)
    path = save_checkpoint(tmp_path / "ck.npz", theta, optimizer_state=state)
    restored = load_checkpoint(path, optimizer_state=opt.init(theta))["optimizer_state"]
    g = np.linspace(-1.0, 1.0, 9)
    step_a, state_a = opt.update(g, state, theta)
    step_b, state_b = opt.update(g, restored, theta)
    np.testing.assert_array_equal(step_a, step_b)
    for a, b in zip(state_a, state_b):
        np.testing.assert_array_equal(a, b)


def test_float32_optimizer_state_keeps_its_dtype(tmp_path):
    theta = np.ones(6, dtype=np.float32)
    opt, state = _trained_state("adam", theta)
    path = save_checkpoint(tmp_path / "ck.npz", theta, optimizer_state=state)
    ck = load_checkpoint(path, optimizer_state=opt.init(theta))
    assert ck["theta"].dtype == np.float32
    assert ck["optimizer_state"].mu.dtype == np.float32
    np.testing.assert_array_equal(ck["optimizer_state"].nu, state.nu)


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64,
                                    np.random.MT19937])
def test_every_bit_generator_round_trips(tmp_path, bitgen):
    """Philox, SFC64 and MT19937 states hold ndarrays, which JSON cannot hold as they are."""
    gen = np.random.Generator(bitgen(123))
    gen.random(17)
    path = save_checkpoint(tmp_path / "ck.npz", np.zeros(2), rng=gen)
    restored = load_checkpoint(path)["rng"]
    assert type(restored.bit_generator) is bitgen
    np.testing.assert_array_equal(restored.random(8), gen.random(8))
    assert restored.integers(1 << 62) == gen.integers(1 << 62)


def test_checkpoint_without_rng_or_optimizer(tmp_path):
    path = save_checkpoint(tmp_path / "ck.npz", np.arange(3.0))
    ck = load_checkpoint(path, n_params=3)
    assert ck["rng"] is None and ck["epoch"] == 0 and ck["history"] == {}
    assert "optimizer_state" not in ck


def test_load_params_reads_a_checkpoint_but_not_vice_versa(tmp_path):
    ck = save_checkpoint(tmp_path / "ck.npz", np.arange(3.0), epoch=1)
    np.testing.assert_array_equal(load_params(ck, n_params=3)[0], np.arange(3.0))
    params = save_params(tmp_path / "p.npz", np.arange(3.0))
    with pytest.raises(CheckpointError, match=r"parameters only, not a training checkpoint"):
        load_checkpoint(params)


def test_optimizer_state_of_another_optimizer_is_refused(tmp_path):
    theta = np.zeros(4)
    _, state = _trained_state("adam", theta)
    path = save_checkpoint(tmp_path / "ck.npz", theta, optimizer_state=state)
    with pytest.raises(CheckpointError, match=r"optimizer state 'AdamState', expected 'RpropState'"):
        load_checkpoint(path, optimizer_state=O.rprop().init(theta))
    with pytest.raises(CheckpointError, match=r"optimizer state None, expected 'AdamState'"):
        load_checkpoint(save_checkpoint(tmp_path / "bare.npz", theta), optimizer_state=O.adam().init(theta))


def test_optimizer_state_of_another_size_is_refused(tmp_path):
    _, state = _trained_state("momentum", np.zeros(4))
    path = save_checkpoint(tmp_path / "ck.npz", np.zeros(4), optimizer_state=state)
    with pytest.raises(CheckpointError, match=r"optimizer field 'velocity' missing or of the wrong shape"):
        load_checkpoint(path, optimizer_state=O.momentum().init(np.zeros(5)))


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# -- bad files: each is refused with a CheckpointError saying what is wrong ------------------------


def _truncated(tmp_path, good):
    path, data, _ = good
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupted(tmp_path, good):
    path, data, _ = good
    mid = len(data) // 2
    flipped = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    path.write_bytes(data[:mid] + flipped + data[mid + 16 :])
    return path


def _wrong_version(tmp_path, good):
    path = tmp_path / "v99.npz"
    np.savez(path, theta=np.zeros(N_PARAMS), __meta__=_meta(version=99))
    return path


def _not_rbp_format(tmp_path, good):
    path = tmp_path / "other.npz"
    np.savez(path, theta=np.zeros(N_PARAMS), __meta__=_meta(format="someone-else"))
    return path


def _no_metadata(tmp_path, good):
    path = tmp_path / "plain.npz"
    np.savez(path, theta=np.zeros(N_PARAMS))
    return path


def _metadata_not_json(tmp_path, good):
    path = tmp_path / "badjson.npz"
    np.savez(path, theta=np.zeros(N_PARAMS), __meta__=np.frombuffer(b"\xff\xfe{not json", dtype=np.uint8))
    return path


def _no_theta(tmp_path, good):
    path = tmp_path / "notheta.npz"
    np.savez(path, weights=np.zeros(N_PARAMS), __meta__=_meta())
    return path


def _wrong_n_params(tmp_path, good):
    path = tmp_path / "small.npz"
    np.savez(path, theta=np.zeros(N_PARAMS - 1), __meta__=_meta())
    return path


def _two_d_theta(tmp_path, good):
    path = tmp_path / "2d.npz"
    np.savez(path, theta=np.zeros((64, 64)), __meta__=_meta())
    return path


def _int_theta(tmp_path, good):
    path = tmp_path / "int.npz"
    np.savez(path, theta=np.zeros(N_PARAMS, dtype=np.int64), __meta__=_meta())
    return path


def _nan_theta(tmp_path, good):
    theta = np.zeros(N_PARAMS)
    theta[17] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, theta=theta, __meta__=_meta())
    return path


def _inf_theta(tmp_path, good):
    theta = np.zeros(N_PARAMS)
    theta[-1] = -np.inf
    path = tmp_path / "inf.npz"
    np.savez(path, theta=theta, __meta__=_meta())
    return path


def _not_a_zip(tmp_path, good):
    path = tmp_path / "text.npz"
    path.write_text("theta = [1, 2, 3]\n" * 50)
    return path


def _empty_file(tmp_path, good):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    return path


def _bare_npy(tmp_path, good):
    path = tmp_path / "bare.npz"  # an .npy file under an .npz name
    np.save(path.with_suffix(".npy"), np.zeros(N_PARAMS))
    path.with_suffix(".npy").rename(path)
    return path


def _missing(tmp_path, good):
    return tmp_path / "never-written.npz"


def _directory(tmp_path, good):
    path = tmp_path / "adir.npz"
    path.mkdir()
    return path


def _extra_member(tmp_path, good):
    path = tmp_path / "extra.npz"
    return _write_zip(path, {
        "theta.npy": _npy_bytes(np.zeros(N_PARAMS)),
        "__meta__.npy": _npy_bytes(_meta()),
        "README.txt": b"hello",
    })


def _path_member(tmp_path, good):
    path = tmp_path / "traversal.npz"
    return _write_zip(path, {
        "theta.npy": _npy_bytes(np.zeros(N_PARAMS)),
        "__meta__.npy": _npy_bytes(_meta()),
        "../../escape.sh": b"#!/bin/sh\n",
    })


def _structured_theta(tmp_path, good):
    path = tmp_path / "structured.npz"
    np.savez(path, theta=np.zeros(N_PARAMS, dtype=[("a", "f8"), ("b", "f8")]), __meta__=_meta())
    return path


BAD_FILES = {
    "truncated": (_truncated, r"not a readable \.npz file \(truncated or corrupted\)"),
    "corrupted": (_corrupted, r"corrupted|not a readable"),
    "wrong-version": (_wrong_version, rf"format version 99; this rbp reads version {FORMAT_VERSION}"),
    "foreign-format": (_not_rbp_format, r"is not an rbp file \(format 'someone-else'\)"),
    "no-metadata": (_no_metadata, r"has no rbp metadata"),
    "metadata-not-json": (_metadata_not_json, r"metadata is not valid JSON"),
    "no-theta": (_no_theta, r"has no 'theta' array"),
    "n-params-mismatch": (_wrong_n_params, rf"theta has {N_PARAMS - 1} parameters but the model has {N_PARAMS}"),
    "2d-theta": (_two_d_theta, r"theta must be a 1-D float array, got shape \(64, 64\)"),
    "int-theta": (_int_theta, r"theta must be a 1-D float array, got shape \(4096,\) dtype int64"),
    "structured-theta": (_structured_theta, r"theta must be a 1-D float array"),
    "nan-theta": (_nan_theta, r"theta contains NaN or inf"),
    "inf-theta": (_inf_theta, r"theta contains NaN or inf"),
    "not-a-zip": (_not_a_zip, r"not a readable \.npz file"),
    "empty-file": (_empty_file, r"not a readable \.npz file"),
    "bare-npy": (_bare_npy, r"not a readable \.npz file"),
    "missing": (_missing, r"does not exist"),
    "directory": (_directory, r"is a directory, not a checkpoint file"),
    "extra-member": (_extra_member, r"unexpected member 'README\.txt'; expected only \.npy arrays"),
    "traversal-member": (_path_member, r"unexpected member '\.\./\.\./escape\.sh'"),
}


@pytest.mark.parametrize("loader", ["checkpoint", "params"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_refused_with_a_clear_error(tmp_path, good, case, loader):
    make, message = BAD_FILES[case]
    path = make(tmp_path, good)
    before = _listing(tmp_path)
    with pytest.raises(CheckpointError, match=message) as info:
        if loader == "checkpoint":
            load_checkpoint(path, n_params=N_PARAMS)
        else:
            load_params(path, n_params=N_PARAMS)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value) or path.name in str(info.value)
    assert _listing(tmp_path) == before  # nothing extracted or written
    assert not (tmp_path.parent / "escape.sh").exists()


def test_the_good_fixture_file_itself_loads(good):
    path, _, theta = good
    np.testing.assert_array_equal(load_checkpoint(path, n_params=N_PARAMS)["theta"], theta)


# -- hostile files execute nothing -----------------------------------------------------------------


class _Payload:
    """Unpickling this object creates ``marker`` (via ``open(marker, "w")``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_npy(marker):
    return _npy_bytes(np.array([_Payload(marker), 1.0], dtype=object), allow_pickle=True)


def test_the_pickle_payload_is_live(tmp_path):
    """Positive control: the crafted member really runs code when loaded with pickle."""
    marker = tmp_path / "pwned"
    np.load(io.BytesIO(_pickle_npy(marker)), allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("member", ["theta.npy", "__meta__.npy", "opt__mu.npy"])
@pytest.mark.parametrize("loader", ["checkpoint", "params"])
def test_pickle_payload_is_refused_and_never_executed(tmp_path, member, loader):
    marker = tmp_path / "pwned"
    members = {"theta.npy": _npy_bytes(np.zeros(3)), "__meta__.npy": _npy_bytes(_meta(n_params=3))}
    members[member] = _pickle_npy(marker)
    path = _write_zip(tmp_path / "hostile.npz", members)
    with pytest.raises(CheckpointError, match=r"object arrays \(a pickle payload\); refused|dtype object"):
        if loader == "checkpoint":
            load_checkpoint(path, n_params=3, optimizer_state=O.adam().init(np.zeros(3)))
        else:
            load_params(path, n_params=3)
    assert not marker.exists()


def test_raw_pickle_file_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"theta": _Payload(marker)}))
    with pytest.raises(CheckpointError, match=r"not a readable \.npz file"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"not a readable \.npz file"):
        load_params(path)
    assert not marker.exists()


def test_trainer_resume_from_hostile_file_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    net = rbp.MLP([2, 3, 2], loss="cross_entropy")
    path = _write_zip(tmp_path / "ck.npz", {
        "theta.npy": _pickle_npy(marker), "__meta__.npy": _npy_bytes(_meta(n_params=net.n_params)),
    })
    X, y = np.eye(2), np.array([0, 1])
    with pytest.raises(CheckpointError, match=r"pickle payload"):
        rbp.StaticTrainer(net, epochs=2, batch_size=2).fit(X, y, checkpoint=path, resume=True)
    assert not marker.exists()


# -- zip bombs -------------------------------------------------------------------------------------


def _zip_bomb(path, n_bytes=50 * 2**20):
    """A checkpoint whose theta member is ``n_bytes`` of zeros, deflated to ~1/1000 of that."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("theta.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.zeros(n_bytes // 8))
        zf.writestr("__meta__.npy", _npy_bytes(_meta(n_params=n_bytes // 8)))
    return path


def test_zip_bomb_is_refused(tmp_path):
    path = _zip_bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 2**20
    with pytest.raises(CheckpointError, match=r"member 'theta\.npy' expands to \d+ bytes from \d+: refused \(zip bomb"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"zip bomb"):
        load_params(path)


def test_a_compressed_but_honest_file_loads(tmp_path):
    """The guard is about the ratio on large members: savez_compressed of real data is fine."""
    theta = np.random.default_rng(0).normal(size=1000)
    path = tmp_path / "c.npz"
    np.savez_compressed(path, theta=theta, __meta__=_meta(n_params=1000))
    np.testing.assert_array_equal(load_checkpoint(path, n_params=1000)["theta"], theta)


def test_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path, monkeypatch):
    path = _zip_bomb(tmp_path / "bomb.npz")
    inflated = [0]
    read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = read(self, n)
        inflated[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    with pytest.raises(CheckpointError, match=r"zip bomb"):
        load_checkpoint(path)
    assert inflated[0] < 2**20, f"{inflated[0]} bytes were decompressed before the bomb was refused"


def test_npy_header_declaring_a_huge_array_is_refused(tmp_path):
    """A 300-byte file whose theta header declares 10**13 float64 (72 TiB): refused from the header,
    nothing allocated."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**13,)})
    path = _write_zip(tmp_path / "liar.npz", {
        "theta.npy": header.getvalue() + b"\0" * 64, "__meta__.npy": _npy_bytes(_meta()),
    })
    with pytest.raises(CheckpointError, match=r"member 'theta\.npy' declares shape \(10000000000000,\)"):
        load_checkpoint(path)


def test_npy_header_lying_a_little_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6,)})
    path = _write_zip(tmp_path / "liar.npz", {
        "theta.npy": header.getvalue() + b"\0" * 64, "__meta__.npy": _npy_bytes(_meta()),
    })
    with pytest.raises(CheckpointError, match=r"declares shape \(1000000,\) of float64 \(\d+ bytes\) but holds"):
        load_checkpoint(path)


# -- malformed metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"rng": {"bit_generator": "PCG64", "state": "x"}}, id="rng-state-garbage"),
        pytest.param({"rng": [1, 2]}, id="rng-not-a-dict"),
        pytest.param({"rng": {"bit_generator": "__class__"}}, id="rng-attribute-name"),
        pytest.param({"rng": {"bit_generator": "RandomState", "state": {}}}, id="rng-not-an-allowed-bitgen"),
        pytest.param({"version": "1"}, id="version-string"),
        pytest.param({"format": None}, id="format-null"),
    ],
)
def test_malformed_metadata_fields_are_refused(tmp_path, overrides):
    path = tmp_path / "m.npz"
    np.savez(path, theta=np.zeros(N_PARAMS), __meta__=_meta(**overrides))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_metadata_json_array_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, theta=np.zeros(3), __meta__=np.frombuffer(b"[1, 2, 3]", dtype=np.uint8))
    with pytest.raises(CheckpointError, match=r"is not an rbp file"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        pytest.param({"epoch": "abc"}, r"metadata field 'epoch' must be an integer >= 0, got 'abc'", id="epoch-string"),
        pytest.param({"epoch": None}, r"'epoch' must be an integer >= 0, got None", id="epoch-null"),
        pytest.param({"epoch": -3}, r"'epoch' must be an integer >= 0, got -3", id="epoch-negative"),
        pytest.param({"epoch": 2.7}, r"'epoch' must be an integer >= 0, got 2\.7", id="epoch-fraction"),
        pytest.param({"epoch": True}, r"'epoch' must be an integer >= 0, got True", id="epoch-true"),
        pytest.param({"version": True}, r"format version True", id="version-true"),
        pytest.param({"history": [1, 2]}, r"'history' must be a dict of lists of numbers", id="history-list"),
        pytest.param({"history": {"loss": "x"}}, r"'history' must be a dict of lists", id="history-column-string"),
        pytest.param({"history": {"loss": ["x"]}}, r"'history' must be a dict of lists", id="history-value-string"),
        pytest.param({"meta": [1]}, r"'meta' must be a dict", id="meta-list"),
        pytest.param({"optimizer": [1]}, r"'optimizer' must be a dict", id="optimizer-list"),
        pytest.param({"optimizer": {"type": "AdamState", "arrays": [], "scalars": {"count": "x"}}},
                     r"'optimizer\.scalars\.count' must be a finite number, got 'x'", id="optimizer-count-string"),
        pytest.param({"optimizer": {"type": "AdamState", "arrays": [], "scalars": {"count": 2.5}}},
                     r"optimizer field 'count' must be an integer, got 2\.5", id="optimizer-count-fraction"),
        pytest.param({"optimizer": {"type": "AdamState", "arrays": [], "scalars": []}},
                     r"'optimizer' must be a dict with", id="optimizer-scalars-list"),
        pytest.param({"rng": "PCG64"}, r"'rng' must be a numpy bit-generator state", id="rng-string"),
    ],
)
def test_malformed_metadata_types_are_refused(tmp_path, overrides, message):
    path = tmp_path / "m.npz"
    fields = {"optimizer": {"type": "AdamState", "arrays": ["mu", "nu"], "scalars": {"count": 3}}, **overrides}
    np.savez(path, theta=np.zeros(4), opt__mu=np.zeros(4), opt__nu=np.zeros(4), __meta__=_meta(n_params=4, **fields))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, optimizer_state=O.adam().init(np.zeros(4)))
    if "optimizer" not in overrides:
        with pytest.raises(CheckpointError, match=message):
            load_params(path)


def test_non_finite_optimizer_state_is_refused(tmp_path):
    _, state = _trained_state("adam", np.zeros(4))
    state = state._replace(mu=np.array([0.0, np.nan, 0.0, np.inf]))
    path = save_checkpoint(tmp_path / "ck.npz", np.zeros(4), optimizer_state=state)
    with pytest.raises(CheckpointError, match=r"optimizer field 'mu' contains NaN or inf"):
        load_checkpoint(path, optimizer_state=O.adam().init(np.zeros(4)))


# -- atomic writes: a good file is never replaced by a partial one ---------------------------------


def _crash_in_savez(monkeypatch):
    real = np.savez

    def savez_then_crash(file, *args, **kwds):
        buf = io.BytesIO()
        real(buf, *args, **kwds)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 3])  # a partial write reaches the disk...
        raise OSError(28, "No space left on device")  # ...then the writer dies

    monkeypatch.setattr(np, "savez", savez_then_crash)


def _crash_in_replace(monkeypatch):
    def replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", replace)


def _crash_in_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


def _interrupt_in_savez(monkeypatch):
    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez)


CRASHES = {
    "savez-raises-midway": (_crash_in_savez, OSError),
    "replace-raises": (_crash_in_replace, OSError),
    "fsync-raises": (_crash_in_fsync, OSError),
    "keyboard-interrupt-midway": (_interrupt_in_savez, KeyboardInterrupt),
}


@pytest.mark.parametrize("writer", ["checkpoint", "params"])
@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_crash_during_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, crash, writer):
    old = np.arange(10.0)
    if writer == "checkpoint":
        path = save_checkpoint(tmp_path / "run.npz", old, optimizer_state=O.adam().init(old), epoch=4)
    else:
        path = save_params(tmp_path / "run.npz", old)
    before = path.read_bytes()
    inject, error = CRASHES[crash]
    inject(monkeypatch)

    with pytest.raises(error):
        if writer == "checkpoint":
            save_checkpoint(path, old + 1, optimizer_state=O.adam().init(old), epoch=5)
        else:
            save_params(path, old + 1)

    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["run.npz"], "a temporary file was left behind"
    np.testing.assert_array_equal(load_params(path, n_params=10)[0], old)


def test_crash_during_first_save_leaves_nothing(tmp_path, monkeypatch):
    _crash_in_savez(monkeypatch)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "run.npz", np.zeros(3))
    monkeypatch.undo()
    assert _listing(tmp_path) == []


def test_save_replaces_the_file_and_creates_parent_directories(tmp_path):
    path = tmp_path / "a" / "b" / "run.npz"
    save_checkpoint(path, np.zeros(3), epoch=1)
    save_checkpoint(path, np.ones(3), epoch=2)
    ck = load_checkpoint(path, n_params=3)
    assert ck["epoch"] == 2
    np.testing.assert_array_equal(ck["theta"], np.ones(3))
    assert _listing(path.parent) == ["run.npz"]


def test_a_crash_while_training_keeps_the_last_good_checkpoint_and_resume_is_exact(tmp_path, monkeypatch):
    """The third end-of-epoch save dies half-way; the file still holds epoch 2, and resuming from it
    finishes bit-identically to a run that never crashed."""
    gen = np.random.default_rng(0)
    X = gen.normal(size=(40, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)

    def trainer():
        return rbp.StaticTrainer(rbp.MLP([3, 5, 2], loss="cross_entropy"), learning_rate=0.05, epochs=5,
                                 batch_size=8)

    whole = trainer().fit(X, y, rng=3)

    path = tmp_path / "run.npz"
    real, calls = np.savez, [0]

    def flaky_savez(file, *args, **kwds):
        calls[0] += 1
        if calls[0] == 3:
            file.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        return real(file, *args, **kwds)

    monkeypatch.setattr(np, "savez", flaky_savez)
    with pytest.raises(OSError, match="No space left"):
        trainer().fit(X, y, rng=3, checkpoint=path, resume=True)
    monkeypatch.undo()

    assert _listing(tmp_path) == ["run.npz"]
    assert load_checkpoint(path)["epoch"] == 2
    resumed = trainer().fit(X, y, rng=3, checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.x, whole.x)
    assert resumed.history["loss"] == whole.history["loss"]
    assert resumed.history["epoch"] == [1, 2, 3, 4, 5]


# -- resuming validates the file before any work ---------------------------------------------------


def test_resume_from_a_checkpoint_of_another_model_is_refused(tmp_path):
    X, y = np.eye(3), np.array([0, 1, 0])
    path = tmp_path / "ck.npz"
    rbp.StaticTrainer(rbp.MLP([3, 4, 2], loss="cross_entropy"), epochs=1, batch_size=3).fit(X, y, checkpoint=path)
    other = rbp.MLP([3, 5, 2], loss="cross_entropy")
    with pytest.raises(CheckpointError, match=rf"theta has \d+ parameters but the model has {other.n_params}"):
        rbp.StaticTrainer(other, epochs=2, batch_size=3).fit(X, y, checkpoint=path, resume=True)


def test_resume_from_a_corrupted_checkpoint_is_loud_not_a_fresh_start(tmp_path):
    X, y = np.eye(3), np.array([0, 1, 0])
    path = tmp_path / "ck.npz"
    net = rbp.MLP([3, 4, 2], loss="cross_entropy")
    rbp.StaticTrainer(net, epochs=1, batch_size=3).fit(X, y, checkpoint=path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated or corrupted"):
        rbp.StaticTrainer(net, epochs=2, batch_size=3).fit(X, y, checkpoint=path, resume=True)


def test_resume_needs_a_checkpoint_path():
    net = rbp.MLP([3, 4, 2], loss="cross_entropy")
    with pytest.raises(ValueError, match=r"resume=True needs checkpoint="):
        rbp.StaticTrainer(net, epochs=1).fit(np.eye(3), [0, 1, 0], resume=True)


def test_module_constants():
    assert C.FORMAT_VERSION == 1
    assert C.MAX_RATIO > 1 and C.MAX_MEMBER_BYTES >= 2**20


# -- issue 10: hostile files that used to escape as other exceptions, and best_theta -----------------


def _meta_bytes(text: bytes):
    return np.frombuffer(text, dtype=np.uint8)


def _with_meta(tmp_path, meta, **arrays):
    path = tmp_path / "hostile.npz"
    arrays = {"theta": np.zeros(4), **arrays}
    if not isinstance(meta, np.ndarray):
        meta = _meta(n_params=4, **{"optimizer": {"type": "AdamState", "arrays": ["mu", "nu"], "scalars": {"count": 1}},
                                    **meta})
    np.savez(path, **arrays, __meta__=meta)
    return path


def _rng_state(bitgen, **changes):
    state = json.loads(json.dumps(np.random.Generator(bitgen(0)).bit_generator.state, default=C._json_default))
    for key, value in changes.items():
        target = state
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return state


HOSTILE_META = {
    # json.loads raised RecursionError
    "deeply-nested-meta": (_meta_bytes(b'{"format": "rbp-checkpoint", "version": 1, "meta": ' + b"[" * 100_000
                                       + b"]" * 100_000 + b"}"), r"nests deeper than"),
    "nested-but-parsable": (_meta_bytes(b'{"format": "rbp-checkpoint", "version": 1, "meta": {"a": ' + b"[" * 500
                                        + b"]" * 500 + b"}}"), r"nests deeper than"),
    # int(float("inf")) raised OverflowError
    "infinite-optimizer-count": ({"optimizer": {"type": "AdamState", "arrays": ["mu", "nu"],
                                                "scalars": {"count": math.inf}}},
                                 r"'optimizer\.scalars\.count' must be a finite number, got inf"),
    # int(float("nan")) raised a ValueError without the file name
    "nan-optimizer-count": ({"optimizer": {"type": "AdamState", "arrays": ["mu", "nu"], "scalars": {"count": math.nan}}},
                            r"hostile\.npz: metadata field 'optimizer\.scalars\.count' must be a finite number"),
    # setting the bit generator's state raised OverflowError
    "rng-huge-state": ({"rng": _rng_state(np.random.PCG64, **{"state.state": 10**100})},
                       r"invalid random generator state: OverflowError"),
    # ... or IndexError
    "rng-short-mt19937-key": ({"rng": {"bit_generator": "MT19937", "state": {"key": [1, 2, 3], "pos": 1}}},
                          r"invalid random generator state: IndexError"),
    "rng-short-philox-buffer": ({"rng": _rng_state(np.random.Philox, buffer=[1])}, r"invalid random generator state"),
    # numpy silently ignored part of the state
    "rng-short-sfc64-state": ({"rng": _rng_state(np.random.SFC64, **{"state.state": [1]})},
                          r"does not round-trip through SFC64"),
    "huge-epoch": ({"epoch": 10**30}, r"'epoch' must be an integer >= 0"),
    "huge-history-int": ({"history": {"epoch": [10**400]}}, r"'history' must be a dict of lists of numbers"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_META))
def test_hostile_metadata_raises_checkpoint_error_not_another_exception(tmp_path, case):
    meta, message = HOSTILE_META[case]
    path = _with_meta(tmp_path, meta, opt__mu=np.zeros(4), opt__nu=np.zeros(4))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, n_params=4, optimizer_state=O.adam().init(np.zeros(4)))
    if "rng" not in case:  # load_params reads no generator state
        with pytest.raises(CheckpointError):
            load_params(path)


def test_two_members_of_one_name_are_refused(tmp_path):
    """zipfile keeps both and numpy silently loaded the second."""
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _write_zip(path, {"__meta__.npy": _npy_bytes(_meta(n_params=4))})
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("theta.npy", _npy_bytes(np.zeros(4)))
            zf.writestr("theta.npy", _npy_bytes(np.ones(4)))
    for loader in (load_checkpoint, load_params):
        with pytest.raises(CheckpointError, match=r"two members named 'theta\.npy'"):
            loader(path)


def _zip_of_empty_members(path, n):
    """A valid zip of ``n`` empty stored members, written directly (zipfile takes seconds for 100 000)."""
    import struct

    local, central = bytearray(), bytearray()
    for i in range(n):
        name = f"m{i}.npy".encode()
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0,
                               len(local)) + name
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF), len(central), len(local), 0)
    if n > 0xFFFF:  # zip64 end record and locator
        z64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), len(local))
        loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(local) + len(central), 1)
        end = z64 + loc + end
    path.write_bytes(bytes(local + central + end))
    return path


@pytest.mark.parametrize("n", [65, 100_000])
def test_too_many_members_are_refused_fast(tmp_path, n):
    import time

    path = _zip_of_empty_members(tmp_path / "many.npz", n)
    assert len(zipfile.ZipFile(path).infolist()) == n  # a zip that the standard library reads
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"{n} members; a checkpoint has at most {C.MAX_MEMBERS}"):
        load_checkpoint(path)
    assert time.perf_counter() - t0 < 0.2


def test_a_negative_shape_header_is_not_called_a_pickle_payload(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (-2, -2)})
    path = _write_zip(tmp_path / "neg.npz", {"theta.npy": header.getvalue() + b"\0" * 32,
                                             "__meta__.npy": _npy_bytes(_meta(n_params=4))})
    with pytest.raises(CheckpointError, match=r"declares a negative shape \(-2, -2\)") as info:
        load_checkpoint(path)
    assert "pickle" not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("loader", [load_checkpoint, load_params])
def test_a_fifo_is_called_a_fifo_and_never_opened(tmp_path, loader):
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)  # opening it for reading would block until a writer comes
    with pytest.raises(CheckpointError, match=r"pipe\.npz is a FIFO \(named pipe\), not a checkpoint file"):
        loader(path)


def _early_stopping_file(tmp_path, best_theta, **best):
    theta = np.zeros(4)
    best = {"loss": 0.5, "epoch": 1, **best}
    return _with_meta(tmp_path, {"best": best}, best_theta=best_theta)


@pytest.mark.parametrize("best_theta, best, message", [
    (np.array([0.0, np.nan, 0.0, 0.0]), {}, r"best_theta contains NaN or inf"),
    (np.array([0.0, np.inf, 0.0, 0.0]), {}, r"best_theta contains NaN or inf"),
    (np.zeros(4, dtype=complex), {}, r"best_theta must be a 1-D float array, got shape \(4,\) dtype complex128"),
    (np.zeros(4, dtype=np.float32), {}, r"best_theta has dtype float32 but theta has float64"),
    (np.zeros(5), {}, r"best_theta has 5 parameters but the model has 4"),
    (np.zeros((2, 2)), {}, r"best_theta must be a 1-D float array"),
    (np.zeros(4), {"loss": math.nan}, r"invalid early-stopping state"),
    (np.zeros(4), {"epoch": -1}, r"invalid early-stopping state"),
], ids=["nan", "inf", "complex", "float32", "wrong-size", "2d", "nan-loss", "negative-epoch"])
def test_best_theta_is_checked_like_theta(tmp_path, best_theta, best, message):
    """Resuming with early stopping used to return SUCCESS with NaN or complex parameters."""
    path = _early_stopping_file(tmp_path, best_theta, **best)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, n_params=4)


def test_a_finished_early_stopping_run_with_nan_best_theta_does_not_resume_as_success(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)

    def trainer():
        return rbp.StaticTrainer(rbp.MLP([3, 4, 2], loss="cross_entropy"), epochs=3, batch_size=10,
                                 validation_fraction=0.3, early_stopping=5)

    path = tmp_path / "ck.npz"
    trainer().fit(X, y, rng=0, checkpoint=path)
    arrays = dict(np.load(path))
    arrays["best_theta"] = np.full_like(arrays["best_theta"], np.nan)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"best_theta contains NaN or inf"):
        trainer().fit(X, y, rng=0, checkpoint=path, resume=True)


def test_integer_history_values_stay_integers(tmp_path):
    """A resumed metrics.csv wrote the counters as 0.0 where an uninterrupted run wrote 0."""
    path = save_checkpoint(tmp_path / "ck.npz", np.zeros(2),
                           history={"n_skipped": [0, np.int64(2)], "loss": [1.0, np.float32(0.5)]})
    history = load_checkpoint(path)["history"]
    assert history == {"n_skipped": [0, 2], "loss": [1.0, 0.5]}
    assert [type(v) for v in history["n_skipped"]] == [int, int]
