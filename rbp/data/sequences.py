"""Seeded sequence tasks for backpropagation through time.

Every generator takes the batch size ``n_sequences``, its task sizes and ``rng``
(a :class:`numpy.random.Generator`, an int seed, or ``None`` meaning seed 0; the
global NumPy state is never touched), validates its arguments before any work,
and returns a :class:`~rbp.data._dataset.SequenceDataset`:

- ``X`` float64, shape (batch, time, n_in);
- ``Y`` float64, shape (batch, time, n_out) for regression and binary tasks, or
  int64 class indices, shape (batch, time), for next-symbol tasks;
- ``mask`` bool, shape (batch, time), True where the step's target enters the loss;
- ``baseline`` the score of a trivial predictor in the task's ``metric``,
  derived in each generator's Notes.

``meta["higher_is_better"]`` gives the direction of ``metric`` (only the Reber
"fraction_solved" is higher-is-better).

The generic :func:`random_weight_guessing` implements Hochreiter &
Schmidhuber's "guess the weights at random" baseline for any model.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from numbers import Integral, Real

import numpy as np

from rbp.core.validation import check_int
from rbp.data._dataset import SequenceDataset

__all__ = [
    "REBER_SYMBOLS",
    "reber",
    "reber_possible_next",
    "reber_solved",
    "adding",
    "temporal_xor",
    "parity",
    "sine",
    "mackey_glass",
    "copy_memory",
    "random_weight_guessing",
]

#: The seven Reber symbols, in the order of the one-hot channels and class indices.
REBER_SYMBOLS = "BTSXPVE"


# ---------------------------------------------------------------------------
# argument checking


def _check_int(name, value, minimum):
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise."""
    return check_int(value, name, minimum=minimum)


def _check_real(name, value, *, low=None, high=None, low_open=False):
    """Return ``value`` as float if it is a finite real in the range, else raise."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "" if low is None else (f" {'>' if low_open else '>='} {low}")
        hi = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be a finite real number{lo}{hi}, got {value!r}")
    return float(value)


def _check_rng(rng):
    """Return ``(generator, seed)``; ``seed`` is None when a Generator was passed."""
    if rng is None:
        return np.random.default_rng(0), 0
    if isinstance(rng, np.random.Generator):
        return rng, None
    if isinstance(rng, Integral) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng)), int(rng)
    raise ValueError(
        "rng must be a numpy.random.Generator, a non-negative int seed or None "
        f"(seed 0), got {rng!r}"
    )


def _one_hot(indices, n):
    return np.eye(n, dtype=np.float64)[indices]


# ---------------------------------------------------------------------------
# Reber grammar

# Reber (1967) finite-state grammar, as in Fahlman (1991) and Hochreiter &
# Schmidhuber (1997): every state emits one of at most two symbols with equal
# probability.  (symbol, next state); "end" is absorbing.
_REBER_PLAIN = {
    "start": (("B", "r0"),),
    "r0": (("T", "r1"), ("P", "r5")),
    "r1": (("S", "r1"), ("X", "r2")),
    "r2": (("S", "r3"), ("X", "r5")),
    "r3": (("E", "end"),),
    "r4": (("V", "r3"), ("P", "r2")),
    "r5": (("T", "r5"), ("V", "r4")),
}


@lru_cache(maxsize=2)
def _reber_automaton(embedded):
    """The (embedded) Reber grammar as a deterministic automaton.

    Returns a dict of arrays over states ``0..n-1`` (``start`` = 0, ``end`` = n-1):
    ``emit`` (n, 2) symbol emitted for a coin flip 0/1, ``succ`` (n, 2) the next
    state, ``delta`` (n, 7) next state on reading a symbol or -1 if illegal,
    ``legal`` (n, 7) bool, plus the raw ``graph``.
    """
    if embedded:
        graph = {"start": (("B", "e0"),), "e0": (("T", "T/start"), ("P", "P/start"))}
        for branch in "TP":
            for state, outs in _REBER_PLAIN.items():
                graph[f"{branch}/{state}"] = tuple(
                    (sym, f"{branch}/post" if nxt == "end" else f"{branch}/{nxt}")
                    for sym, nxt in outs
                )
            # after the inner string, repeat the branch symbol: the long-range memory
            graph[f"{branch}/post"] = ((branch, "last"),)
        graph["last"] = (("E", "end"),)
    else:
        graph = dict(_REBER_PLAIN)
    names = list(graph) + ["end"]
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    end = index["end"]
    emit = np.full((n, 2), -1, dtype=np.int64)
    succ = np.full((n, 2), end, dtype=np.int64)
    delta = np.full((n, 7), -1, dtype=np.int64)
    legal = np.zeros((n, 7), dtype=bool)
    for name, outs in graph.items():
        i = index[name]
        for k in range(2):  # a one-way state takes its only edge on either coin flip
            sym, nxt = outs[k % len(outs)]
            emit[i, k] = REBER_SYMBOLS.index(sym)
            succ[i, k] = index[nxt]
        for sym, nxt in outs:
            delta[i, REBER_SYMBOLS.index(sym)] = index[nxt]
            legal[i, REBER_SYMBOLS.index(sym)] = True
    for arr in (emit, succ, delta, legal):
        arr.setflags(write=False)
    return {"graph": graph, "names": names, "emit": emit, "succ": succ,
            "delta": delta, "legal": legal, "end": end}


@lru_cache(maxsize=2)
def _reber_bigram_baseline(embedded):
    """Exact fraction of strings solved by the best *memoryless* argmax predictor.

    A predictor that sees only the current symbol predicts one fixed next symbol
    ``pred[a]`` per input symbol ``a``.  With ``V(q, a)`` the probability that all
    remaining predictions are legal, having just read ``a`` into state ``q``,
    ``V(q, a) = [pred[a] legal in q] * sum_{q -s-> q'} 1/|out(q)| V(q', s)`` with
    ``V(end, .) = 1``: one small linear system per choice of ``pred``; every
    choice among the symbols that could be legal after ``a`` is enumerated.
    """
    graph = _reber_automaton(embedded)["graph"]
    pairs = sorted({(nxt, sym) for outs in graph.values() for sym, nxt in outs
                    if nxt != "end"})
    where = {p: i for i, p in enumerate(pairs)}
    n = len(pairs)
    P = np.zeros((n, n))
    r = np.zeros(n)
    candidates = {}
    for (q, a), i in where.items():
        outs = graph[q]
        candidates.setdefault(a, set()).update(s for s, _ in outs)
        for s, nxt in outs:
            if nxt == "end":
                r[i] += 1.0 / len(outs)
            else:
                P[i, where[(nxt, s)]] += 1.0 / len(outs)
    symbols = sorted(candidates)
    first = where[(graph["start"][0][1], "B")]
    best = 0.0
    for choice in itertools.product(*(sorted(candidates[a]) for a in symbols)):
        pred = dict(zip(symbols, choice))
        ok = np.array([any(s == pred[a] for s, _ in graph[q]) for q, a in pairs], float)
        value = np.linalg.solve(np.eye(n) - ok[:, None] * P, ok * r)[first]
        best = max(best, float(value))
    return best


def reber(n_sequences, *, embedded=True, rng=None):
    """Next-symbol prediction on strings of the (embedded) Reber grammar.

    Parameters
    ----------
    n_sequences : int >= 1
        Number of strings (the batch size).
    embedded : bool, default True
        Embedded Reber grammar (``B T <reber> T E`` or ``B P <reber> P E``) if
        True, the plain Reber grammar (``B ... E``) if False.
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, time, 7) -- one-hot input symbol
        (channels in the order ``"BTSXPVE"``), all zeros on padding.
        ``Y`` : int64, shape (batch, time) -- class index of the actual next
        symbol, 0 on padding.
        ``mask`` : bool, shape (batch, time) -- False on padding.
        ``loss`` ``"cross_entropy"``; ``metric`` ``"fraction_solved"`` (higher is
        better, see :func:`reber_solved`); ``baseline`` 0.5 (embedded) or 0.125
        (plain).
        ``meta`` holds ``possible_next`` (bool, (batch, time, 7), the legal next
        symbols at each step, same as :func:`reber_possible_next`), ``strings``
        (list of str), ``lengths`` (int array, symbols per string; the string
        spans ``lengths - 1`` steps), ``penultimate_step`` (int array, the step
        whose target repeats the second symbol, embedded only),
        ``chance_per_step_uniform``, ``chance_exact_uniform``,
        ``solved_fraction_uniform``, ``cross_entropy_floor``,
        ``baseline_memoryless``.

    Notes
    -----
    A string ``s_0 ... s_{L-1}`` becomes ``L - 1`` steps: the input at step
    ``t`` is ``s_t`` and the target ``s_{t+1}``; the final ``E`` is never an
    input.  Strings of one batch have different lengths and are padded at the
    end to the longest one.  The grammar is Reber's (1967) as used by Cleeremans
    et al. (1989), Fahlman (1991) and Hochreiter & Schmidhuber (1997); every
    branch is taken with probability 1/2.  The automaton is deterministic, so
    the set of legal next symbols is a function of the prefix; a step's target
    has at most two legal values, except at the penultimate step of an embedded
    string where exactly one is legal: the second symbol of the string.

    Baseline.  The metric is the fraction of strings *solved* -- every step's
    top prediction is a legal continuation (:func:`reber_solved`).  For the
    embedded grammar the baseline predictor knows the grammar perfectly but has
    no memory of the second symbol.  Every step is then predictable except the
    penultimate, where it must guess T or P; the second symbol is T or P with
    probability 1/2, independently of the rest, so it solves exactly 1/2 of the
    strings in expectation: ``baseline = 0.5``.  For the plain grammar that
    predictor would solve every string, so the baseline is instead the best
    memoryless predictor (top prediction a fixed function of the current
    symbol, as a network without recurrence): it solves exactly 1/8 of the
    strings (it can get only the ``B T X S E`` family right), computed exactly
    by an absorbing Markov chain over (state, last symbol).  The same quantity
    for the embedded grammar, 0, is ``meta["baseline_memoryless"]``.  A uniform
    random guesser picks a legal symbol with probability
    ``|legal| / 7`` per step (``meta["chance_per_step_uniform"]``, the mean over
    the data's steps) and the exact next symbol with probability 1/7
    (``meta["chance_exact_uniform"]``); ``meta["solved_fraction_uniform"]`` is its
    expected fraction of strings solved.  ``meta["cross_entropy_floor"]`` is the
    cross-entropy of the optimal predictor, mean of ``ln |legal|`` over steps.

    References
    ----------
    A. S. Reber, "Implicit learning of artificial grammars", J. Verbal Learning
    and Verbal Behavior 6, 1967.
    A. Cleeremans, D. Servan-Schreiber, J. L. McClelland, "Finite state automata
    and simple recurrent networks", Neural Computation 1(3), 1989.
    S. E. Fahlman, "The recurrent cascade-correlation architecture", NIPS 3, 1991.
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997, Sec. 5.1.

    Examples
    --------
    >>> from rbp.data.sequences import reber
    >>> ds = reber(3, rng=0)
    >>> ds.X.shape[0], ds.X.shape[2], ds.Y.dtype, ds.loss, ds.baseline
    (3, 7, dtype('int64'), 'cross_entropy', 0.5)
    >>> all(s[1] == s[-2] for s in ds.meta["strings"])
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    if not isinstance(embedded, (bool, np.bool_)):
        raise ValueError(f"embedded must be a bool, got {embedded!r}")
    embedded = bool(embedded)
    gen, seed = _check_rng(rng)
    auto = _reber_automaton(embedded)
    end = auto["end"]

    # walk the automaton for the whole batch at once: one coin flip per string per step
    states = np.zeros(n_sequences, dtype=np.int64)  # start
    sym_cols, state_cols = [], []
    while np.any(states != end):
        flip = gen.integers(0, 2, size=n_sequences)
        live = states != end
        state_cols.append(np.where(live, states, end))
        sym_cols.append(np.where(live, auto["emit"][states, flip], -1))
        states = np.where(live, auto["succ"][states, flip], end)
    symbols = np.stack(sym_cols, axis=1)  # (batch, L_max), -1 after the end
    emitted_from = np.stack(state_cols, axis=1)
    lengths = (symbols >= 0).sum(axis=1)
    n_steps = int(lengths.max()) - 1

    t = np.arange(n_steps)
    mask = t[None, :] < (lengths[:, None] - 1)
    X = np.where(mask[:, :, None], _one_hot(np.maximum(symbols[:, :-1], 0), 7), 0.0)
    Y = np.where(mask, symbols[:, 1:], 0).astype(np.int64)
    # the legal next symbols at step t are those the state emitting s_{t+1} can emit
    possible = auto["legal"][emitted_from[:, 1:]] & mask[:, :, None]

    n_legal = possible.sum(axis=2)
    valid = n_legal[mask]
    chance_step = np.where(mask, n_legal / 7.0, 1.0)
    strings = ["".join(REBER_SYMBOLS[s] for s in row[row >= 0]) for row in symbols]
    meta = {
        "task": "reber",
        "embedded": embedded,
        "n_sequences": n_sequences,
        "seed": seed,
        "symbols": REBER_SYMBOLS,
        "strings": strings,
        "lengths": lengths,
        "possible_next": possible,
        "higher_is_better": True,
        "chance_per_step_uniform": float(valid.mean() / 7.0),
        "chance_exact_uniform": 1.0 / 7.0,
        "solved_fraction_uniform": float(np.prod(chance_step, axis=1).mean()),
        "cross_entropy_floor": float(np.log(valid).mean()),
        "baseline_memoryless": _reber_bigram_baseline(embedded),
    }
    if embedded:
        meta["penultimate_step"] = lengths - 3
        baseline = 0.5
        meta["baseline_description"] = (
            "knows the grammar, no memory of the second symbol: guesses the "
            "penultimate symbol, solves 1/2 of the strings")
    else:
        baseline = meta["baseline_memoryless"]
        meta["baseline_description"] = (
            "best memoryless predictor (top choice a function of the current "
            "symbol only): solves 1/8 of the strings")
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="cross_entropy",
                           baseline=baseline, metric="fraction_solved", meta=meta)


def _check_reber_dataset(dataset):
    X = getattr(dataset, "X", None)
    mask = getattr(dataset, "mask", None)
    if (not isinstance(X, np.ndarray) or X.ndim != 3 or X.shape[2] != 7
            or not isinstance(mask, np.ndarray) or mask.shape != X.shape[:2]):
        got = getattr(X, "shape", type(dataset).__name__)
        raise ValueError(
            "dataset must be a SequenceDataset from reber() with X of shape "
            f"(batch, time, 7) and a (batch, time) mask, got X with shape {got}")
    return X, mask.astype(bool)


def reber_possible_next(dataset):
    """The legal next symbols at every step of a Reber data set.

    Recomputed from ``dataset.X`` by running the grammar's automaton, so it stays
    right for a data set sliced along the batch axis.

    Parameters
    ----------
    dataset : SequenceDataset
        As returned by :func:`reber` (or a batch slice of one, with ``X``,
        ``mask`` and ``meta["embedded"]``).

    Returns
    -------
    ndarray of bool, shape (batch, time, 7)
        True for every symbol (channels ``"BTSXPVE"``) that may legally follow
        the prefix read up to and including step ``t``; all False on padding.
        The actual next symbol ``dataset.Y[b, t]`` is always among them.

    Raises
    ------
    ValueError
        If ``X`` is not one-hot on the unmasked steps or spells a string the
        grammar rejects.

    Notes
    -----
    The Reber automaton is deterministic: each state has at most two outgoing
    edges with different symbols, so a prefix determines the state and hence
    the legal continuations.  Whether the grammar is embedded is read from
    ``meta["embedded"]``, or inferred from the third symbol (``B`` only in the
    embedded grammar).

    References
    ----------
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997, Sec. 5.1.

    Examples
    --------
    >>> from rbp.data.sequences import reber, reber_possible_next
    >>> ds = reber(2, rng=1)
    >>> pn = reber_possible_next(ds)
    >>> bool(pn[0, 0, 1] and pn[0, 0, 4]), int(pn[0, 0].sum())   # after B: T or P
    (True, 2)
    """
    X, mask = _check_reber_dataset(dataset)
    batch, n_steps, _ = X.shape
    if mask.any() and not np.all((X[mask] == 1.0).sum(axis=1) == 1):
        raise ValueError("dataset.X must be one-hot over the 7 Reber symbols on "
                         "every unmasked step, got another encoding")
    symbols = np.where(mask, X.argmax(axis=2), -1)
    embedded = getattr(dataset, "meta", {}).get("embedded")
    if embedded is None:
        embedded = n_steps > 2 and bool(np.any(symbols[:, 2] == REBER_SYMBOLS.index("B")))
    auto = _reber_automaton(bool(embedded))
    possible = np.zeros((batch, n_steps, 7), dtype=bool)
    states = np.zeros(batch, dtype=np.int64)
    for t in range(n_steps):
        live = mask[:, t]
        nxt = auto["delta"][states, np.maximum(symbols[:, t], 0)]
        if np.any(live & (nxt < 0)):
            b = int(np.flatnonzero(live & (nxt < 0))[0])
            raise ValueError(
                f"dataset.X must spell strings of the {'embedded ' if embedded else ''}"
                f"Reber grammar, got an illegal symbol "
                f"{REBER_SYMBOLS[symbols[b, t]]!r} at sequence {b}, step {t}")
        states = np.where(live, nxt, states)
        possible[:, t] = auto["legal"][states] & live[:, None]
    return possible


def reber_solved(probabilities, dataset, threshold=None, *, most_active=False):
    """Which Reber strings a predictor solves.

    Parameters
    ----------
    probabilities : array_like, shape (batch, time, 7)
        Predicted next-symbol scores (softmax probabilities or per-symbol
        sigmoid outputs), channels in the order ``"BTSXPVE"``.
    dataset : SequenceDataset
        The :func:`reber` data set the predictions are for.
    threshold : float or None, default None
        None: a step is right when the top-scoring symbol is a legal next
        symbol.  A float: a step is right when the symbols scoring above
        ``threshold`` are exactly the legal next symbols (every predicted symbol
        legal and every legal symbol predicted) -- the stricter criterion.
    most_active : bool, default False
        If True (and ``threshold`` is None), a step is right when the legal
        next symbols are the most active outputs: every legal symbol scores
        strictly higher than every illegal one.

    Returns
    -------
    ndarray of bool, shape (batch,)
        True for a string whose every unmasked step is right.  Its mean is the
        ``"fraction_solved"`` metric that ``dataset.baseline`` refers to.

    Notes
    -----
    Three criteria, from weakest to strictest: argmax (the top prediction is
    a legal continuation), most active (Hochreiter & Schmidhuber 1997: "the
    output unit(s) corresponding to the possible next symbol(s) is(are)
    always the most active ones"), and threshold (the set of outputs above
    the threshold is exactly the legal set).  All three treat the
    penultimate step of an embedded string alike: only the symbol equal to
    the string's second symbol is legal there, which needs memory of the
    whole inner string.  ``dataset.baseline`` (0.5 embedded) holds for the
    argmax criterion, and for the others when the memoryless predictor
    commits to T or P; one that hedges 1/2 on both solves nothing under the
    most-active criterion or any threshold below 1/2.

    References
    ----------
    S. E. Fahlman, "The recurrent cascade-correlation architecture", NIPS 3, 1991.
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997, Sec. 5.1.

    Examples
    --------
    >>> from rbp.data.sequences import reber, reber_possible_next, reber_solved
    >>> ds = reber(5, rng=0)
    >>> oracle = reber_possible_next(ds) / 2.0    # 1/2 on each legal symbol
    >>> bool(reber_solved(oracle, ds).all()), bool(reber_solved(oracle, ds, 0.3).all())
    (True, True)
    >>> bool(reber_solved(oracle, ds, most_active=True).all())
    True
    """
    X, mask = _check_reber_dataset(dataset)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != X.shape:
        raise ValueError(f"probabilities must have shape {X.shape} (batch, time, 7) "
                         f"to match dataset.X, got shape {p.shape}")
    if not np.all(np.isfinite(p[mask])):
        raise ValueError("probabilities must be finite on the unmasked steps, got "
                         "NaN or inf")
    if not isinstance(most_active, (bool, np.bool_)):
        raise ValueError(f"most_active must be a bool, got {most_active!r}")
    if threshold is not None:
        threshold = _check_real("threshold", threshold)
        if most_active:
            raise ValueError("threshold must be None when most_active=True (they are "
                             f"two different criteria), got threshold={threshold!r}")
    possible = reber_possible_next(dataset)
    if threshold is not None:
        right = np.all((p > threshold) == possible, axis=2)
    elif most_active:
        lowest_legal = np.where(possible, p, np.inf).min(axis=2)
        highest_illegal = np.where(possible, -np.inf, p).max(axis=2)
        right = lowest_legal > highest_illegal
    else:
        right = np.take_along_axis(possible, p.argmax(axis=2)[:, :, None], axis=2)[..., 0]
    return np.all(right | ~mask, axis=1)


# ---------------------------------------------------------------------------
# adding, temporal XOR, parity


def adding(n_sequences, length=50, *, rng=None):
    """The adding problem: sum the two marked values of a sequence.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    length : int >= 2, default 50
        Sequence length ``T``.
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, T, 2) -- channel 0 a value ~ U[0, 1],
        channel 1 the marker (1.0 at exactly two steps, else 0.0).
        ``Y`` : float64, shape (batch, T, 1) -- the sum of the two marked values
        at the last step, 0 elsewhere.
        ``mask`` : True only at the last step.
        ``loss`` ``"squared"``, ``metric`` ``"mse"``, ``baseline`` 1/6.
        ``meta["markers"]`` (int, (batch, 2)) and ``meta["baseline_empirical"]``
        (the predict-1 MSE on this sample).

    Notes
    -----
    Hochreiter & Schmidhuber (1997, Sec. 5.4) introduced the task (values in
    [-1, 1], markers -1/1); this is the modern form of Le et al. (2015) and
    Arjovsky et al. (2016): values U[0, 1], the first marker uniformly in the
    first half ``[0, T // 2)``, the second uniformly in the second half
    ``[T // 2, T)`` -- so the two are distinct and the first must be remembered
    across at least one step (on average T/2 steps).

    Baseline.  The target is ``y = u_1 + u_2`` with independent
    ``u_i ~ U[0, 1]``, so ``E[y] = 1`` and the predictor that ignores the input
    and outputs 1 has MSE ``Var[y] = 2 * 1/12 = 1/6``, the best constant.

    References
    ----------
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997.
    Q. V. Le, N. Jaitly, G. E. Hinton, "A simple way to initialize recurrent
    networks of rectified linear units", arXiv:1504.00941, 2015.
    M. Arjovsky, A. Shah, Y. Bengio, "Unitary evolution recurrent neural
    networks", ICML 2016.

    Examples
    --------
    >>> from rbp.data.sequences import adding
    >>> ds = adding(4, length=10, rng=0)
    >>> ds.X.shape, ds.Y.shape, int(ds.mask.sum()), round(ds.baseline, 4)
    ((4, 10, 2), (4, 10, 1), 4, 0.1667)
    >>> bool((ds.X[:, :, 1].sum(axis=1) == 2).all())
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    length = _check_int("length", length, 2)
    gen, seed = _check_rng(rng)
    half = length // 2
    values = gen.uniform(0.0, 1.0, size=(n_sequences, length))
    first = gen.integers(0, half, size=n_sequences)
    second = gen.integers(half, length, size=n_sequences)
    rows = np.arange(n_sequences)
    markers = np.zeros((n_sequences, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=2)
    total = values[rows, first] + values[rows, second]
    Y = np.zeros((n_sequences, length, 1))
    Y[:, -1, 0] = total
    mask = np.zeros((n_sequences, length), dtype=bool)
    mask[:, -1] = True
    meta = {
        "task": "adding", "n_sequences": n_sequences, "length": length, "seed": seed,
        "markers": np.stack([first, second], axis=1),
        "higher_is_better": False,
        "baseline_description": "predict the mean sum 1: MSE = Var(U1 + U2) = 1/6",
        "baseline_empirical": float(np.mean((total - 1.0) ** 2)),
    }
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="squared", baseline=1.0 / 6.0,
                           metric="mse", meta=meta)


def temporal_xor(n_sequences, n_pairs=100, *, rng=None):
    """Elman's temporal XOR: predict the next bit of a stream of XOR triplets.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    n_pairs : int >= 1, default 100
        Number of triplets ``(a, b, a XOR b)``; the sequence has
        ``T = 3 * n_pairs`` steps.
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, T, 1) -- the bit ``x_t``.
        ``Y`` : float64, shape (batch, T, 1) -- the next bit ``x_{t+1}``
        (0 at the last step, which has no next bit).
        ``mask`` : True at the steps ``t % 3 == 1``, whose next bit is a XOR
        bit -- the only predictable targets.
        ``loss`` ``"binary_cross_entropy"``, ``metric`` ``"error_rate"`` (of
        thresholded predictions on the masked bits), ``baseline`` 0.5.
        ``meta["has_target"]`` (bool, (batch, T)) is True wherever a next bit
        exists, for training on every step as Elman did.

    Notes
    -----
    Elman (1990): the stream is ``a_1 b_1 c_1 a_2 b_2 c_2 ...`` with ``a, b``
    fair coin flips and ``c = a XOR b``; the triplets start at step 0 (phase
    known).  At steps ``t % 3 == 1`` the input is ``b`` and the target ``c``,
    which is determined by the current input and the one before: a network
    needs one step of memory.  The targets at the other steps are fresh coin
    flips; they are kept in ``Y`` (not zeroed) but masked out, because no
    predictor can beat chance on them.

    Baseline.  Without memory of ``a``, ``c = a XOR b`` is a fair coin
    independent of ``b``, so any memoryless predictor (or a constant) has
    expected error rate 1/2 on the masked bits.

    References
    ----------
    J. L. Elman, "Finding structure in time", Cognitive Science 14(2), 1990.

    Examples
    --------
    >>> from rbp.data.sequences import temporal_xor
    >>> ds = temporal_xor(2, n_pairs=4, rng=0)
    >>> ds.X.shape, int(ds.mask[0].sum()), ds.baseline
    ((2, 12, 1), 4, 0.5)
    >>> x = ds.X[..., 0]
    >>> bool((x[:, 2::3] == (x[:, 0::3] != x[:, 1::3])).all())
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    n_pairs = _check_int("n_pairs", n_pairs, 1)
    gen, seed = _check_rng(rng)
    length = 3 * n_pairs
    ab = gen.integers(0, 2, size=(n_sequences, n_pairs, 2))
    bits = np.concatenate([ab, (ab[:, :, :1] ^ ab[:, :, 1:])], axis=2)
    bits = bits.reshape(n_sequences, length).astype(np.float64)
    X = bits[:, :, None]
    Y = np.zeros_like(X)
    Y[:, :-1, 0] = bits[:, 1:]
    t = np.arange(length)
    mask = np.broadcast_to(t % 3 == 1, (n_sequences, length)).copy()
    has_target = np.broadcast_to(t < length - 1, (n_sequences, length)).copy()
    meta = {
        "task": "temporal_xor", "n_sequences": n_sequences, "n_pairs": n_pairs,
        "seed": seed, "has_target": has_target, "higher_is_better": False,
        "baseline_description": "error rate 1/2 on the XOR bits without memory",
    }
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="binary_cross_entropy",
                           baseline=0.5, metric="error_rate", meta=meta)


def parity(n_sequences, length=10, *, target="every", rng=None):
    """Parity of a bit sequence, at every step or only at the end.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    length : int >= 1, default 10
        Sequence length ``T``.
    target : {"every", "end"}, default "every"
        ``"every"``: the target at step ``t`` is the parity of ``x_0 .. x_t``
        (running parity), all steps masked in.  ``"end"``: only the last step
        carries a target, the parity of the whole sequence.
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, T, 1) -- fair coin-flip bits.
        ``Y`` : float64, shape (batch, T, 1) -- parity, 0 at steps without a
        target.
        ``mask`` : all True (``"every"``) or only the last step (``"end"``).
        ``loss`` ``"binary_cross_entropy"``, ``metric`` ``"error_rate"``,
        ``baseline`` 0.5; ``meta["baseline_memoryless"]`` is the error rate of
        the best predictor that sees only the current bit.

    Notes
    -----
    Parity is the classic hard case for gradient learning of long-range
    dependencies (Minsky & Papert 1969; Bengio et al. 1994; Hochreiter &
    Schmidhuber 1997 show it falls to random weight guessing, see
    :func:`random_weight_guessing`).  The running parity obeys
    ``p_t = p_{t-1} XOR x_t``: one bit of state suffices.

    Baseline.  The parity of ``k >= 2`` fair bits is a fair coin independent
    of any ``k - 1`` of them, so a constant predictor -- and any predictor
    missing one bit -- has error rate 1/2.  A memoryless predictor gets step 0
    of ``"every"`` right (``p_0 = x_0``), error ``(T - 1) / (2T)``; for
    ``"end"`` it errs 1/2 unless ``T = 1``.

    References
    ----------
    Y. Bengio, P. Simard, P. Frasconi, "Learning long-term dependencies with
    gradient descent is difficult", IEEE Trans. Neural Networks 5(2), 1994.
    S. Hochreiter, J. Schmidhuber, "LSTM can solve hard long time lag
    problems", NIPS 9, 1997.

    Examples
    --------
    >>> from rbp.data.sequences import parity
    >>> ds = parity(3, length=5, rng=0)
    >>> ds.X.shape, ds.Y.shape, bool(ds.mask.all())
    ((3, 5, 1), (3, 5, 1), True)
    >>> bool((ds.Y[:, -1, 0] == ds.X[:, :, 0].sum(axis=1) % 2).all())
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    length = _check_int("length", length, 1)
    if not isinstance(target, str) or target not in ("every", "end"):
        raise ValueError(f'target must be "every" or "end", got {target!r}')
    gen, seed = _check_rng(rng)
    bits = gen.integers(0, 2, size=(n_sequences, length))
    running = (np.cumsum(bits, axis=1) % 2).astype(np.float64)
    X = bits.astype(np.float64)[:, :, None]
    if target == "every":
        mask = np.ones((n_sequences, length), dtype=bool)
        Y = running[:, :, None]
        memoryless = 0.5 * (length - 1) / length
    else:
        mask = np.zeros((n_sequences, length), dtype=bool)
        mask[:, -1] = True
        Y = np.zeros((n_sequences, length, 1))
        Y[:, -1, 0] = running[:, -1]
        memoryless = 0.5 if length > 1 else 0.0
    meta = {
        "task": "parity", "n_sequences": n_sequences, "length": length,
        "target": target, "seed": seed, "higher_is_better": False,
        "baseline_memoryless": memoryless,
        "baseline_description": "constant prediction: error rate 1/2",
    }
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="binary_cross_entropy",
                           baseline=0.5, metric="error_rate", meta=meta)


# ---------------------------------------------------------------------------
# continuous series


def _next_step(series, task_meta, description):
    """Next-step regression from a (batch, T + 1) series, with persistence baseline."""
    X = series[:, :-1, None].copy()
    Y = series[:, 1:, None].copy()
    mask = np.ones(X.shape[:2], dtype=bool)
    persistence = float(np.mean((Y - X) ** 2))
    meta = dict(task_meta)
    meta.update({
        "higher_is_better": False,
        "baseline_description": description,
        "baseline_mean": float(np.mean((Y - Y.mean()) ** 2)),
    })
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="squared", baseline=persistence,
                           metric="mse", meta=meta)


def sine(n_sequences, length=100, *, freq_range=(0.01, 0.1), noise=0.0, rng=None):
    """Next-step prediction of sine waves with random frequency and phase.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    length : int >= 2, default 100
        Number of steps ``T``.
    freq_range : (float, float), default (0.01, 0.1)
        Frequency ``f`` in cycles per step, drawn uniformly from
        ``[low, high]`` with ``0 < low <= high <= 0.5`` (Nyquist); the default
        gives periods of 10 to 100 steps.
    noise : float >= 0, default 0.0
        Standard deviation of Gaussian observation noise added to the series
        (inputs and targets alike).
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, T, 1) -- ``s_t``, t = 0 .. T-1.
        ``Y`` : float64, shape (batch, T, 1) -- ``s_{t+1}``.
        ``mask`` : all True.
        ``loss`` ``"squared"``, ``metric`` ``"mse"``, ``baseline`` the
        persistence MSE of this data.  ``meta`` holds ``frequency`` and
        ``phase`` (batch,) and ``baseline_mean``, the MSE of predicting the
        mean of ``Y``.

    Notes
    -----
    ``s_t = sin(2 pi f t + phi) + noise * e_t`` with ``f ~ U[freq_range]``,
    ``phi ~ U[0, 2 pi)``, ``e_t ~ N(0, 1)``, one ``(f, phi)`` per sequence.  A
    sine obeys ``s_{t+1} = 2 cos(2 pi f) s_t - s_{t-1}``, so a linear recurrence
    of order 2 predicts it exactly once ``f`` is inferred from the past: the
    standard toy for BPTT.

    Baseline.  The persistence forecast ``s_{t+1} ~ s_t``, its MSE measured
    on the data, ``mean((Y - X)^2)``; without noise its expectation is
    ``E[1 - cos(2 pi f)]``, small for slow waves, so beating it is the real
    test.  Predicting the mean gives about 1/2 (the power of a unit sine),
    reported as ``meta["baseline_mean"]``.

    References
    ----------
    D. E. Rumelhart, G. E. Hinton, R. J. Williams, "Learning internal
    representations by error propagation", in Parallel Distributed
    Processing, vol. 1, MIT Press, 1986 (learning sequences, BPTT).

    Examples
    --------
    >>> from rbp.data.sequences import sine
    >>> ds = sine(2, length=20, rng=0)
    >>> ds.X.shape, bool((ds.X[:, 1:] == ds.Y[:, :-1]).all())
    ((2, 20, 1), True)
    >>> ds.baseline < ds.meta["baseline_mean"]
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    length = _check_int("length", length, 2)
    try:
        low, high = freq_range
    except (TypeError, ValueError):
        raise ValueError("freq_range must be a pair (low, high) with "
                         f"0 < low <= high <= 0.5, got {freq_range!r}") from None
    numbers = all(isinstance(v, Real) and not isinstance(v, bool) for v in (low, high))
    if not (numbers and 0.0 < low <= high <= 0.5):
        raise ValueError("freq_range must be a pair (low, high) with "
                         f"0 < low <= high <= 0.5, got {freq_range!r}")
    noise = _check_real("noise", noise, low=0.0)
    gen, seed = _check_rng(rng)
    frequency = gen.uniform(low, high, size=n_sequences)
    phase = gen.uniform(0.0, 2.0 * np.pi, size=n_sequences)
    t = np.arange(length + 1)
    series = np.sin(2.0 * np.pi * frequency[:, None] * t + phase[:, None])
    if noise > 0.0:
        series = series + noise * gen.standard_normal(series.shape)
    task_meta = {"task": "sine", "n_sequences": n_sequences, "length": length,
                 "freq_range": (float(low), float(high)), "noise": noise, "seed": seed,
                 "frequency": frequency, "phase": phase}
    return _next_step(series, task_meta,
                      "persistence forecast s_{t+1} = s_t, MSE measured on the data")


def _mackey_glass_raw(n_sequences, n_samples, tau, washout, gen, *,
                      beta=0.2, gamma=0.1, power=10, dt=0.1, substeps=10):
    """Integrate Mackey-Glass by RK4 (dt), return (batch, n_samples) every ``substeps``."""
    delay = int(round(tau / dt))
    # history x(t) for t in [-tau, 0], one random level per fine step
    ring = gen.uniform(0.5, 1.5, size=(n_sequences, delay + 1))
    head = delay  # ring[:, head] is x(now); ring[:, (head + 1) % (delay + 1)] is x(now - tau)

    def rhs(x, x_delayed):
        return beta * x_delayed / (1.0 + x_delayed ** power) - gamma * x

    n_fine = (washout + n_samples) * substeps
    out = np.empty((n_sequences, n_samples))
    k_out = 0
    for step in range(1, n_fine + 1):
        x = ring[:, head]
        d0 = ring[:, (head + 1) % (delay + 1)]          # x(t - tau)
        d1 = ring[:, (head + 2) % (delay + 1)]          # x(t + dt - tau)
        dm = 0.5 * (d0 + d1)                             # linear interpolation at t + dt/2
        k1 = rhs(x, d0)
        k2 = rhs(x + 0.5 * dt * k1, dm)
        k3 = rhs(x + 0.5 * dt * k2, dm)
        k4 = rhs(x + dt * k3, d1)
        head = (head + 1) % (delay + 1)                  # overwrites x(t - tau), now unused
        ring[:, head] = x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        if step > washout * substeps and step % substeps == 0:
            out[:, k_out] = ring[:, head]
            k_out += 1
    return out


def mackey_glass(n_sequences, length=200, *, tau=17, washout=500, normalise=True,
                 rng=None):
    """Next-step prediction of the chaotic Mackey-Glass series.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    length : int >= 2, default 200
        Number of steps ``T`` (sampled every time unit).
    tau : float > 0, default 17
        Delay; a multiple of the integration step 0.1.  17 gives the classic
        mildly chaotic attractor, 30 a more chaotic one.
    washout : int >= 0, default 500
        Time units integrated and discarded so the random initial history
        settles on the attractor.
    normalise : bool, default True
        Standardise to zero mean and unit variance with the mean and standard
        deviation of this data set (stored in ``meta`` to undo it).
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        ``X`` : float64, shape (batch, T, 1) -- ``x(t)``, t = 0 .. T-1.
        ``Y`` : float64, shape (batch, T, 1) -- ``x(t + 1)``.
        ``mask`` : all True.
        ``loss`` ``"squared"``, ``metric`` ``"mse"``, ``baseline`` the
        persistence MSE on this data (in normalised units when normalised).
        ``meta`` holds ``mean`` and ``std`` of the raw series, ``raw_min``,
        ``raw_max`` and ``baseline_mean`` (MSE of predicting the mean).

    Notes
    -----
    Mackey & Glass (1977):

    ``dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t)``

    with ``beta = 0.2``, ``gamma = 0.1``, ``n = 10``.  It is integrated by
    fourth-order Runge-Kutta with step ``dt = 0.1`` (the delayed term at the
    half step linearly interpolated) and sampled every ``Delta t = 1``, after a
    washout of ``washout`` time units.  Each sequence starts from its own
    random history ``x(s) ~ U[0.5, 1.5]`` i.i.d. on the grid of
    ``[-tau, 0]``.  From a positive history the solution stays positive and
    below ``max(x(0), (beta/gamma) max_x x/(1 + x^n)) ~ 1.45`` (the drive is
    bounded by ``0.2 * 0.723``), so the raw series is bounded.  Next-step
    prediction of this series is the benchmark of Lapedes & Farber (1987) and
    of echo-state networks (Jaeger & Haas 2004).

    Baseline.  The persistence forecast ``x(t + 1) ~ x(t)``, MSE measured on
    the data; predicting the mean gives ``meta["baseline_mean"]`` (~1 when
    normalised).

    References
    ----------
    M. C. Mackey, L. Glass, "Oscillation and chaos in physiological control
    systems", Science 197(4300), 1977.
    A. Lapedes, R. Farber, "Nonlinear signal processing using neural networks:
    prediction and system modelling", Los Alamos report LA-UR-87-2662, 1987.
    H. Jaeger, H. Haas, "Harnessing nonlinearity", Science 304(5667), 2004.

    Examples
    --------
    >>> from rbp.data.sequences import mackey_glass
    >>> ds = mackey_glass(2, length=50, washout=100, rng=0)
    >>> ds.X.shape, bool(0.0 < ds.meta["raw_min"] < ds.meta["raw_max"] < 1.5)
    ((2, 50, 1), True)
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    length = _check_int("length", length, 2)
    tau = _check_real("tau", tau, low=0.0, low_open=True)
    if abs(tau * 10.0 - round(tau * 10.0)) > 1e-9:
        raise ValueError(f"tau must be a multiple of the integration step 0.1, got {tau!r}")
    washout = _check_int("washout", washout, 0)
    if not isinstance(normalise, (bool, np.bool_)):
        raise ValueError(f"normalise must be a bool, got {normalise!r}")
    gen, seed = _check_rng(rng)
    raw = _mackey_glass_raw(n_sequences, length + 1, tau, washout, gen)
    mean, std = float(raw.mean()), float(raw.std())
    series = (raw - mean) / std if normalise else raw
    task_meta = {"task": "mackey_glass", "n_sequences": n_sequences, "length": length,
                 "tau": tau, "beta": 0.2, "gamma": 0.1, "n": 10, "dt": 0.1,
                 "sample_step": 1.0, "washout": washout, "normalise": bool(normalise),
                 "seed": seed, "mean": mean, "std": std,
                 "raw_min": float(raw.min()), "raw_max": float(raw.max())}
    return _next_step(series, task_meta,
                      "persistence forecast x(t+1) = x(t), MSE measured on the data")


# ---------------------------------------------------------------------------
# copy memory


def copy_memory(n_sequences, T=100, *, n_symbols=8, n_copy=10, rng=None):
    """The copy-memory task: reproduce a symbol sequence after a long delay.

    Parameters
    ----------
    n_sequences : int >= 1
        Batch size.
    T : int >= 1, default 100
        Delay; the sequence has ``T + 2 * n_copy`` steps.
    n_symbols : int >= 2, default 8
        Number of data categories.
    n_copy : int >= 1, default 10
        Number of symbols to copy.
    rng : numpy.random.Generator, int or None
        Random source; an int is a seed, None means seed 0.

    Returns
    -------
    SequenceDataset
        Categories: data ``0 .. n_symbols - 1``, blank ``n_symbols``,
        delimiter ``n_symbols + 1`` (``meta["blank"]``, ``meta["delimiter"]``).
        ``X`` : float64, shape (batch, T + 2 n_copy, n_symbols + 2) -- one-hot.
        ``Y`` : int64, shape (batch, T + 2 n_copy) -- class indices over the
        same ``n_symbols + 2`` categories.
        ``mask`` : all True (blanks are targets too).
        ``loss`` ``"cross_entropy"``, ``metric`` ``"cross_entropy"`` (mean over
        all steps), ``baseline`` ``n_copy ln(n_symbols) / (T + 2 n_copy)``.

    Notes
    -----
    Arjovsky, Shah & Bengio (2016), after Hochreiter & Schmidhuber (1997):
    input ``n_copy`` symbols drawn uniformly from the data categories, then
    ``T - 1`` blanks, the delimiter, and ``n_copy`` blanks; the target is
    ``T + n_copy`` blanks followed by the ``n_copy`` input symbols.  The
    recall starts on the step after the delimiter.

    Baseline.  The memoryless strategy predicts the blank with certainty on
    the first ``T + n_copy`` steps (zero loss) and the uniform distribution
    over the data symbols on the last ``n_copy`` (loss ``ln n_symbols`` each);
    averaged over all steps that is ``n_copy ln(n_symbols) / (T + 2 n_copy)``,
    ``10 ln 8 / (T + 20)`` for the defaults.

    References
    ----------
    M. Arjovsky, A. Shah, Y. Bengio, "Unitary evolution recurrent neural
    networks", ICML 2016.
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997.

    Examples
    --------
    >>> from rbp.data.sequences import copy_memory
    >>> ds = copy_memory(2, T=5, rng=0)
    >>> ds.X.shape, ds.Y.shape, round(ds.baseline, 6)
    ((2, 25, 10), (2, 25), 0.831777)
    >>> bool((ds.Y[:, -10:] == ds.X[:, :10].argmax(axis=2)).all())
    True
    """
    n_sequences = _check_int("n_sequences", n_sequences, 1)
    T = _check_int("T", T, 1)
    n_symbols = _check_int("n_symbols", n_symbols, 2)
    n_copy = _check_int("n_copy", n_copy, 1)
    gen, seed = _check_rng(rng)
    blank, delimiter = n_symbols, n_symbols + 1
    length = T + 2 * n_copy
    data = gen.integers(0, n_symbols, size=(n_sequences, n_copy))
    inputs = np.full((n_sequences, length), blank, dtype=np.int64)
    inputs[:, :n_copy] = data
    inputs[:, n_copy + T - 1] = delimiter
    Y = np.full((n_sequences, length), blank, dtype=np.int64)
    Y[:, T + n_copy:] = data
    X = _one_hot(inputs, n_symbols + 2)
    mask = np.ones((n_sequences, length), dtype=bool)
    meta = {
        "task": "copy_memory", "n_sequences": n_sequences, "T": T,
        "n_symbols": n_symbols, "n_copy": n_copy, "seed": seed,
        "blank": blank, "delimiter": delimiter, "n_classes": n_symbols + 2,
        "higher_is_better": False,
        "baseline_description": ("memoryless: blank for sure, then uniform over the "
                                 "symbols at the recall steps"),
    }
    return SequenceDataset(X=X, Y=Y, mask=mask, loss="cross_entropy",
                           baseline=n_copy * math.log(n_symbols) / length,
                           metric="cross_entropy", meta=meta)


# ---------------------------------------------------------------------------
# random weight guessing


def random_weight_guessing(evaluate, init, n_trials, rng=None, *, solved=None,
                           stop_when_solved=True):
    """Guess parameter vectors at random; keep the best (Hochreiter & Schmidhuber).

    Parameters
    ----------
    evaluate : callable ``evaluate(theta) -> score`` or ``-> (score, is_solved)``
        Scores a parameter vector; lower is better.  ``score`` is a float
        (``+inf`` allowed, NaN is an error); an optional bool beside it says
        whether ``theta`` solves the task.
    init : callable ``init(rng) -> theta``
        Draws one random parameter vector (1-D array) from the Generator, as a
        model's ``init`` does.
    n_trials : int >= 1
        Maximum number of guesses.
    rng : numpy.random.Generator, int or None
        Random source passed to ``init``; an int is a seed, None means seed 0.
    solved : callable ``solved(score) -> bool``, optional
        Success predicate on the score (for example ``lambda s: s < 0.04``).
        A trial is solved if this or ``evaluate``'s flag says so.
    stop_when_solved : bool, default True
        Stop at the first solving trial (the count Hochreiter & Schmidhuber
        report); otherwise run all ``n_trials`` and keep the best.

    Returns
    -------
    dict
        ``best_score`` (float, the lowest score seen), ``best_theta``
        (ndarray, its parameters), ``n_trials`` (trials run),
        ``trials_to_solve`` (1-based index of the first solving trial, or
        None), ``solved`` (bool), ``solution`` (the first solving parameter
        vector, or None) and ``scores`` (ndarray, shape (n_trials,), every
        trial's score).

    Notes
    -----
    Hochreiter & Schmidhuber (1997) showed that several long-time-lag
    benchmarks of the early 1990s (the "latch" and "2-sequence" problems,
    parity) are solved faster by drawing all weights at random until the
    net works than by the gradient methods proposed for them; a task is a
    fair test of learning only if it resists this.  This helper is
    model-agnostic: any ``init``/``evaluate`` pair, such as a model's
    ``init`` and its loss or error rate on a data set, plugs in.  Run it with
    the same budget of evaluations as a gradient method to compare them.

    References
    ----------
    S. Hochreiter, J. Schmidhuber, "LSTM can solve hard long time lag
    problems", NIPS 9, 1997.
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997, Sec. 5 (guessing).

    Examples
    --------
    >>> import numpy as np
    >>> from rbp.data.sequences import random_weight_guessing
    >>> target = np.array([0.5, -0.5])
    >>> out = random_weight_guessing(lambda th: float(np.sum((th - target) ** 2)),
    ...                              lambda g: g.uniform(-1, 1, size=2), 1000, rng=0,
    ...                              solved=lambda s: s < 0.01)
    >>> out["solved"], out["trials_to_solve"] <= 1000
    (True, True)
    """
    if not callable(evaluate):
        raise ValueError(f"evaluate must be callable evaluate(theta) -> score, got {evaluate!r}")
    if not callable(init):
        raise ValueError(f"init must be callable init(rng) -> theta, got {init!r}")
    n_trials = _check_int("n_trials", n_trials, 1)
    if solved is not None and not callable(solved):
        raise ValueError(f"solved must be None or callable solved(score) -> bool, got {solved!r}")
    gen, _ = _check_rng(rng)

    scores = []
    best_score, best_theta, trials_to_solve, solution = math.inf, None, None, None
    for trial in range(1, n_trials + 1):
        theta = np.asarray(init(gen), dtype=np.float64)
        out = evaluate(theta)
        flag = False
        if isinstance(out, tuple):
            if len(out) != 2:
                raise ValueError("evaluate must return a score or (score, is_solved), "
                                 f"got a tuple of length {len(out)}")
            out, flag = out[0], bool(out[1])
        score = float(out)
        if math.isnan(score):
            raise ValueError(f"evaluate must return a number (lower is better), got NaN "
                             f"at trial {trial}; check the model for overflow")
        scores.append(score)
        if best_theta is None or score < best_score:
            best_score, best_theta = score, theta.copy()
        if flag or (solved is not None and bool(solved(score))):
            if trials_to_solve is None:
                trials_to_solve, solution = trial, theta.copy()
            if stop_when_solved:
                break
    return {
        "best_score": float(best_score),
        "best_theta": best_theta,
        "n_trials": len(scores),
        "trials_to_solve": trials_to_solve,
        "solved": trials_to_solve is not None,
        "solution": solution,
        "scores": np.asarray(scores),
    }
