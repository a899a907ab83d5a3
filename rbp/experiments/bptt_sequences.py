"""Full vs truncated backpropagation through time on classic sequence tasks.

Research question
    What does truncating backpropagation through time cost on tasks whose
    dependencies reach further back than the truncation window, and what
    does it cost on a task that needs one step of memory only?

What is compared
    An Elman net (``rbp.ElmanRNN``, tanh hidden layer) is trained with the
    core trainer (``rbp.Trainer``: Adam, mini-batches, shuffled) by full BPTT
    and by truncated BPTT(k1, k2) (every ``k1`` steps, backpropagate ``k2``
    steps; ``train.<task>_truncations`` lists the ``[k1, k2]`` pairs) on three
    tasks from ``rbp.data.sequences``:

    * ``embedded_reber`` -- the embedded Reber grammar, next-symbol
      prediction (7 symbols, cross-entropy, 16 hidden units, lr 0.01,
      batches of 16, 60 epochs on 512 strings; TBPTT(4, 8) and TBPTT(2, 3)).
      Metric: fraction of held-out strings solved; baseline 1/2 (a net
      without memory of the second symbol cannot predict the second-to-last
      one).
    * ``adding`` -- the adding problem, sequences of length 30 (squared loss,
      16 hidden units, lr 0.01, batches of 32, gradient norm clipped at 1,
      100 epochs on 1024 sequences; TBPTT(5, 10) and TBPTT(2, 4)). Metric:
      held-out MSE; baseline 1/6 (predict the mean sum); reference line 1/12
      (remembering only the second marked value).
    * ``temporal_xor`` -- Elman's temporal XOR, 50 (input, input, XOR)
      triples per sequence (binary cross-entropy, 8 hidden units, lr 0.03,
      batches of 16, 60 epochs on 128 sequences; TBPTT(3, 3) and
      TBPTT(1, 1)). Metric: held-out error rate on the XOR bits; baseline 1/2.
      Also Hochreiter & Schmidhuber's random-weight-guessing baseline
      (uniform weights in [-3, 3], best of as many guesses as the full-BPTT
      run computed gradients, chosen on the training set, scored on the
      held-out set; ``train.random_guessing`` lists the tasks that get it).

    The training set is drawn with ``data.seed``, the held-out set with
    ``data.seed + 1000``; both stay fixed while ``run.seeds`` repeats the
    training with the seeds ``run.seed, run.seed + 1, ...`` (initialisation
    and shuffling; also the guessing's random source). The held-out metric
    is recorded after every epoch (``test_<metric>`` in each run's history);
    the table gives the final and the best epoch's value, mean over seeds.
    "beats" = the final held-out score is better than the baseline by more
    than 10 % of the baseline.

    The long dependencies (Reber's second symbol, the adding problem's first
    marker) lie beyond short truncation windows, so truncated BPTT with a
    small ``k2`` is expected to stay near the baseline there, while temporal
    XOR needs one step of memory only.

How to reproduce
    ``rbp run bptt_sequences``             (~12 s; 1 seed; also ``python experiments/bptt_sequences.py``)
    ``rbp run bptt_sequences --seeds 5``   (five training seeds)
    ``rbp run bptt_sequences --quick``     (a few seconds; smoke test)
    ``rbp run bptt_sequences --set 'data.tasks=["adding", "temporal_xor"]'``
    ``rbp run experiments/bptt_sequences.toml``
    ``rbp run --resume runs/<folder>``     (continue an interrupted run)

    ``python experiments/bptt_sequences.py --seed S`` sets the first training seed only; the data stay those of
    ``data.seed`` (before the conversion to the run protocol, ``--seed`` set
    both; for seed 0 the runs are the same). Timings were measured with
    ``OPENBLAS_NUM_THREADS=1`` on a shared 2-core machine; "seconds" is the
    trainer's wall time (gradients and updates, without the per-epoch
    evaluation on the held-out set, which roughly doubled the times the
    script used to print).

    Every training writes a checkpoint after each epoch into the run folder,
    ``checkpoints/<task>-<bptt|tbptt<k1>-<k2>>-seed<S>.train.npz`` (the
    per-epoch held-out metric is part of its history). ``rbp run
    --resume runs/<folder>`` (the folder of ``--out``; by default
    ``runs/bptt_sequences-<date>-<time>``) continues an interrupted
    run with its saved config: finished trainings are not repeated, the
    interrupted one continues from its last epoch, random weight guessing is
    run again (it is seeded), and every number of the summary is the one an
    uninterrupted run gives, except the timings (the seconds of a resumed
    training add up the per-epoch training times of both sessions).

Expected results (measured: full defaults, seed 0; final / best epoch)
    embedded Reber, fraction solved (baseline 0.5): full BPTT 1.000 / 1.000,
    TBPTT(4, 8) 1.000 / 1.000, TBPTT(2, 3) 0.486 / 0.553 -- at the
    baseline: a 3-step window cannot carry the second symbol to the end of
    the string. ~0.4-0.6 s per run.
    adding (T = 30), MSE (baseline 0.1667): full BPTT 0.0232 / 0.0189,
    TBPTT(5, 10) 0.0624 / 0.0443, TBPTT(2, 4) 0.0691 / 0.0356; all three
    beat the baseline, but only full BPTT ends well below 1/12 = 0.0833
    (remembering the second marked value only). ~0.9-1.1 s per run.
    temporal XOR, error rate (baseline 0.5): full BPTT, TBPTT(3, 3) and
    TBPTT(1, 1) all 0.000 (one step of memory suffices); random weight
    guessing with 480 guesses (the full-BPTT run's 480 gradients): 0.325
    (0.314 on the training set), not solved. ~0.3-0.4 s per run.
    The whole default run takes ~12 s.
    ``--quick`` (seed 0): Reber 0.996 / 0.996 / 0.516, adding 0.0593 /
    0.0917 / 0.1135, temporal XOR 0 / 0 / 0, guessing (120) 0.430.

Figures: ``figures/<task>.png`` (training loss and held-out metric per epoch,
one colour per method, the baselines as horizontal lines).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rbp
from rbp.config import Range
from rbp.data import sequences
from rbp.report import new_figure, save_figure

from ._common import about, check_names, prepare, seeds

NAME = "bptt_sequences"

DEFAULTS = {
    "data": {
        "tasks": ["embedded_reber", "adding", "temporal_xor"],  # which tasks to run, in table order
        "seed": 0,  # training sets drawn with this seed, held-out sets with seed + 1000
        "embedded_reber_n_train": 512,  # strings
        "embedded_reber_n_test": 512,
        "adding_n_train": 1024,  # sequences
        "adding_n_test": 1024,
        "adding_length": 30,  # time steps per sequence
        "temporal_xor_n_train": 128,  # sequences
        "temporal_xor_n_test": 256,
        "temporal_xor_n_pairs": 50,  # (input, input, XOR) triples per sequence
    },
    "model": {  # hidden units of the Elman net
        "embedded_reber_hidden": 16,
        "adding_hidden": 16,
        "temporal_xor_hidden": 8,
    },
    "train": {
        "optimizer": "adam",
        "embedded_reber_learning_rate": 0.01,
        "adding_learning_rate": 0.01,
        "temporal_xor_learning_rate": 0.03,
        "embedded_reber_epochs": 60,
        "adding_epochs": 100,
        "temporal_xor_epochs": 60,
        "embedded_reber_batch_size": 16,
        "adding_batch_size": 32,
        "temporal_xor_batch_size": 16,
        "embedded_reber_clip_norm": 0.0,  # gradient norm clipping; 0 = off
        "adding_clip_norm": 1.0,
        "temporal_xor_clip_norm": 0.0,
        # truncated BPTT(k1, k2) variants run after full BPTT: [k1, k2] pairs, 1 <= k1 <= k2
        "embedded_reber_truncations": [[4, 8], [2, 3]],
        "adding_truncations": [[5, 10], [2, 4]],
        "temporal_xor_truncations": [[3, 3], [1, 1]],
        "random_guessing": ["temporal_xor"],  # tasks that also get the random-weight-guessing baseline
        "guess_range": 3.0,  # guessed weights are uniform in [-guess_range, guess_range]
    },
    "run": {"seeds": 1, "seed": 0},
}

QUICK = {
    "data": {
        "embedded_reber_n_train": 256, "embedded_reber_n_test": 256,
        "adding_n_train": 256, "adding_n_test": 512, "adding_length": 20,
        "temporal_xor_n_train": 64, "temporal_xor_n_test": 128, "temporal_xor_n_pairs": 20,
    },
    "train": {"embedded_reber_epochs": 40, "adding_epochs": 40, "temporal_xor_epochs": 30},
}

# task -> what the config does not set: input/output sizes, loss, figure title
TASKS = {
    "embedded_reber": {"n_in": 7, "n_out": 7, "loss": "cross_entropy",
                       "title": "Embedded Reber grammar: fraction of held-out strings solved"},
    "adding": {"n_in": 2, "n_out": 1, "loss": "squared", "title": "Adding problem: held-out MSE"},
    "temporal_xor": {"n_in": 1, "n_out": 1, "loss": "binary_cross_entropy",
                     "title": "Temporal XOR: held-out error rate on the XOR bits"},
}
TEST_SEED_OFFSET = 1000  # the held-out set is drawn with data.seed + 1000


class _TruncationPairs(tuple):
    """A config rule (checked per list item by ``rbp.config.validate``): ``[k1, k2]``, integers ``1 <= k1 <= k2``."""

    def __new__(cls):
        return super().__new__(cls, ("[k1, k2] with integers 1 <= k1 <= k2",))

    def __contains__(self, pair):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        ok = ok and all(isinstance(k, int) and not isinstance(k, bool) for k in pair)
        return bool(ok and 1 <= pair[0] <= pair[1])


CONSTRAINTS = {"data.tasks": tuple(TASKS), "train.random_guessing": tuple(TASKS),
               "train.guess_range": Range(0, low_open=True), "data.adding_length": Range(2),
               "data.temporal_xor_n_pairs": Range(1)}
for _task in TASKS:
    CONSTRAINTS.update({f"data.{_task}_n_train": Range(1), f"data.{_task}_n_test": Range(1),
                        f"model.{_task}_hidden": Range(1), f"train.{_task}_clip_norm": Range(0),
                        f"train.{_task}_truncations": _TruncationPairs()})


def check(config: dict):
    """Build every net (each truncation) and trainer from ``config`` before anything is written; raises
    ValueError for an invalid task list, truncation pair or option."""
    tasks = check_names(config["data"]["tasks"], TASKS, "data.tasks")
    bad = [t for t in config["train"]["random_guessing"] if t not in TASKS]
    if bad:
        raise ValueError(f"train.random_guessing must list names from {list(TASKS)}, got {bad!r}")
    for task in tasks:
        key = f"train.{task}_truncations"
        pairs = config["train"][f"{task}_truncations"]
        for pair in [None] + pairs:
            if pair is not None and not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise ValueError(f"{key}: every entry must be a pair [k1, k2], got {pair!r}")
            with about(f"model.{task}_hidden", key, arguments={"n_hidden": f"model.{task}_hidden", "truncation": key}):
                net = _net(task, config, None if pair is None else tuple(pair))
        if len({tuple(p) for p in pairs}) != len(pairs):
            raise ValueError(f"{key}: the pairs must be distinct, got {pairs!r}")
        with about("train.optimizer", f"train.{task}_learning_rate", f"train.{task}_epochs",
                   f"train.{task}_batch_size", f"train.{task}_clip_norm",
                   arguments={name: f"train.{task}_{name}"
                              for name in ("learning_rate", "epochs", "batch_size", "clip_norm")}):
            _trainer(task, net, config["train"])


def _net(task: str, config: dict, truncation) -> rbp.ElmanRNN:
    spec = TASKS[task]
    return rbp.ElmanRNN(spec["n_in"], config["model"][f"{task}_hidden"], spec["n_out"], loss=spec["loss"],
                        truncation=truncation)


def _trainer(task: str, net, train_cfg: dict, *, progress=None, epoch_metrics=None) -> rbp.Trainer:
    return rbp.Trainer(
        net, train_cfg["optimizer"], learning_rate=train_cfg[f"{task}_learning_rate"],
        epochs=train_cfg[f"{task}_epochs"], batch_size=train_cfg[f"{task}_batch_size"],
        clip_norm=train_cfg[f"{task}_clip_norm"] or None, epoch_metrics=epoch_metrics, progress=progress,
    )


def _make(task: str, n: int, seed: int, data: dict):
    if task == "embedded_reber":
        return sequences.reber(n, embedded=True, rng=seed)
    if task == "adding":
        return sequences.adding(n, data["adding_length"], rng=seed)
    return sequences.temporal_xor(n, data["temporal_xor_n_pairs"], rng=seed)


def metric(net, theta, ds):
    """The task's metric (``ds.metric``) of the net's predictions on ``ds``."""
    P = net.predict(theta, ds.X)
    m = ds.mask
    if ds.metric == "fraction_solved":
        return float(sequences.reber_solved(P, ds).mean())
    if ds.metric == "mse":
        return float(np.mean((P[m] - ds.Y[m]) ** 2))
    if ds.metric == "error_rate":
        return float(np.mean((P[m][:, 0] > 0.5) != (ds.Y[m][:, 0] > 0.5)))
    raise ValueError(f"unknown metric {ds.metric!r}")


def _method(truncation) -> str:
    return "full BPTT" if truncation is None else f"TBPTT(k1={truncation[0]}, k2={truncation[1]})"


def _checkpoint_name(task, truncation, seed) -> str:
    method = "bptt" if truncation is None else f"tbptt{truncation[0]}-{truncation[1]}"
    return f"{task}-{method}-seed{seed}"


def _train_one(task, truncation, train, test, config, seed, progress, checkpoint, resume=False):
    """Train one net (checkpoint every epoch; continue from it if ``resume``); returns the run dict (the
    trainer's history plus the held-out metric per epoch)."""
    net = _net(task, config, truncation)
    key = f"test_{test.metric}"
    batch_size = config["train"][f"{task}_batch_size"]
    trainer = _trainer(task, net, config["train"], progress=progress,
                       epoch_metrics=lambda theta: {key: metric(net, theta, test)})
    result = trainer.fit(train.X, train.Y, mask=train.mask, rng=seed, checkpoint=checkpoint, resume=resume)
    history = result.history
    curve = history[key]
    higher = bool(test.meta.get("higher_is_better", False))
    n_batches = -(-train.X.shape[0] // batch_size)
    method = _method(truncation)
    return {
        "label": f"{task}: {method}", "seed": int(seed), "task": task, "method": method,
        "truncation": None if truncation is None else list(truncation), "metric": test.metric,
        "final": float(curve[-1]), "best": float(max(curve) if higher else min(curve)),
        "seconds": float(history["time"][-1]) if history.get("time") else 0.0,
        "epochs": len(curve), "n_gradients": int(n_batches * len(curve)), "status": result.status.name,
        "params": int(net.n_params), "history": history,
    }


def random_guessing(task, train, test, config, budget, seed):
    """Best of ``budget`` uniform weight guesses on the training set, scored on ``test``."""
    spec, scale = TASKS[task], config["train"]["guess_range"]
    net = rbp.ElmanRNN(spec["n_in"], config["model"][f"{task}_hidden"], spec["n_out"], loss=spec["loss"])
    higher = bool(test.meta.get("higher_is_better", False))
    sign = -1.0 if higher else 1.0  # the guesser minimises
    perfect = 1.0 if higher else 0.0
    t0 = time.perf_counter()
    out = sequences.random_weight_guessing(
        lambda th: sign * metric(net, th, train), lambda g: g.uniform(-scale, scale, net.n_params), budget,
        rng=seed, solved=lambda s: sign * s == perfect,
    )
    return {"seed": int(seed), "n_trials": out["n_trials"], "solved": out["solved"],
            "trials_to_solve": out["trials_to_solve"], "train": sign * out["best_score"],
            "test": metric(net, out["best_theta"], test), "seconds": time.perf_counter() - t0}


def references(task, test):
    """Extra horizontal lines: (panel, value, label)."""
    if task == "embedded_reber":
        return [("loss", float(test.meta["cross_entropy_floor"]), "optimal predictor's loss")]
    if task == "adding":
        # remembering only the second marked value: E[(U1 - 1/2)^2] = Var U1 = 1/12
        return [("metric", 1.0 / 12.0, "second value only (1/12)")]
    return []


def _beats(value, baseline, higher) -> bool:
    margin = (value - baseline) if higher else (baseline - value)
    return bool(margin > 0.1 * abs(baseline))


def _stats(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def plot_task(task, runs, info, path):
    """Training loss (log) and held-out metric per epoch; one colour per method, one line per seed."""
    spec = TASKS[task]
    fig, (ax_loss, ax_metric) = new_figure(1, 2, figsize=(11, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    for i, method in enumerate(methods):
        for j, run in enumerate(r for r in runs if r["method"] == method):
            h = run["history"]
            epochs = np.asarray(h["epoch"])
            label = method if j == 0 else None
            alpha = 1.0 if j == 0 else 0.35
            ax_loss.plot(epochs, h["loss"], color=f"C{i}", alpha=alpha, label=label)
            ax_metric.plot(epochs, h[f"test_{info['metric']}"], color=f"C{i}", alpha=alpha, label=label)
    axes = {"loss": ax_loss, "metric": ax_metric}
    for panel, value, label in info["references"]:
        axes[panel].axhline(value, color="tab:purple", linestyle="-.", label=f"{label} ({value:.3g})")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(f"training loss ({spec['loss']} per step)")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (running mean over the epoch)")
    ax_loss.legend()
    baseline = info["baseline"]
    ax_metric.axhline(baseline, color="0.4", linestyle="--", label=f"baseline ({baseline:.3g})")
    rwg = info.get("random_weight_guessing")
    if rwg:
        test, _ = _stats([g["test"] for g in rwg])
        trials = "/".join(str(n) for n in dict.fromkeys(g["n_trials"] for g in rwg))
        ax_metric.axhline(test, color="tab:red", linestyle=":",
                          label=f"random weight guessing, {trials} guesses ({test:.3g})")
    ax_metric.set_xlabel("epoch")
    better = "higher" if info["higher_is_better"] else "lower"
    ax_metric.set_ylabel(f"held-out {info['metric']} ({better} is better)")
    lo, hi = ax_metric.get_ylim()
    ax_metric.set_ylim(lo, hi + 0.06 * (hi - lo))  # keep a baseline at the top edge visible
    ax_metric.set_title("held-out score")
    ax_metric.legend()
    n = len({r["seed"] for r in runs})
    fig.suptitle(spec["title"] + (f" ({n} seeds)" if n > 1 else ""))
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _table(tasks, runs, infos):
    rows = []
    for task in tasks:
        info = infos[task]
        mine = [r for r in runs if r["task"] == task]
        for method in dict.fromkeys(r["method"] for r in mine):
            rs = [r for r in mine if r["method"] == method]
            final, final_sd = _stats([r["final"] for r in rs])
            rows.append({
                "task": task, "method": method, "metric": info["metric"], "final": final, "final_sd": final_sd,
                "best": _stats([r["best"] for r in rs])[0], "baseline": info["baseline"],
                "beats_baseline": _beats(final, info["baseline"], info["higher_is_better"]), "seeds": len(rs),
                "epochs": float(np.mean([r["epochs"] for r in rs])),
                "budget": float(np.mean([r["n_gradients"] for r in rs])),
                "seconds": float(np.mean([r["seconds"] for r in rs])),
            })
        rwg = info.get("random_weight_guessing")
        if rwg:
            final, final_sd = _stats([g["test"] for g in rwg])
            rows.append({
                "task": task, "method": "random weight guessing", "metric": info["metric"], "final": final,
                "final_sd": final_sd, "best": None, "baseline": info["baseline"],
                "beats_baseline": _beats(final, info["baseline"], info["higher_is_better"]), "seeds": len(rwg),
                "epochs": None, "budget": float(np.mean([g["n_trials"] for g in rwg])),
                "seconds": float(np.mean([g["seconds"] for g in rwg])),
            })
    return rows


def run(config: dict, out_dir, *, progress=None, resume=False) -> dict:
    """Train the nets, write one figure per task into the run folder's ``figures/`` and return the summary.

    ``resume=True`` continues from the per-epoch checkpoints (see :mod:`rbp.experiments`).
    """
    config, folder = prepare(sys.modules[__name__], config, out_dir, resume=resume)
    tasks = list(config["data"]["tasks"])
    data = config["data"]
    variants = {t: [None] + [tuple(p) for p in config["train"][f"{t}_truncations"]] for t in tasks}

    runs, infos, figures = [], {}, []
    for task in tasks:
        train = _make(task, data[f"{task}_n_train"], data["seed"], data)
        test = _make(task, data[f"{task}_n_test"], data["seed"] + TEST_SEED_OFFSET, data)
        higher = bool(test.meta.get("higher_is_better", False))
        info = infos[task] = {
            "metric": test.metric, "higher_is_better": higher, "baseline": float(test.baseline),
            "baseline_description": test.meta.get("baseline_description", ""),
            "references": [(panel, value, label) for panel, value, label in references(task, test)],
            "n_train": int(train.X.shape[0]), "n_test": int(test.X.shape[0]), "n_steps": int(train.X.shape[1]),
        }
        mine = []
        for seed in seeds(config):
            seed_runs = [_train_one(task, trunc, train, test, config, seed, progress,
                                    folder.checkpoint(_checkpoint_name(task, trunc, seed)), resume)
                         for trunc in variants[task]]
            mine += seed_runs
            if task in config["train"]["random_guessing"]:
                # as many guesses as the full-BPTT run of this seed computed gradients
                budget = seed_runs[0]["n_gradients"]
                info.setdefault("random_weight_guessing", []).append(
                    random_guessing(task, train, test, config, budget, seed))
        runs += mine
        name = f"figures/{task}.png"
        plot_task(task, mine, info, folder.figure(f"{task}.png"))
        extra = ", random weight guessing (red, dotted)" if info.get("random_weight_guessing") else ""
        figures.append({"file": name, "caption": (
            f"{TASKS[task]['title'].split(':')[0]}: training loss (log scale) and held-out {test.metric} per "
            f"epoch for full and truncated BPTT, with the baseline (grey, dashed){extra}."
        )})

    table = _table(tasks, runs, infos)
    notes = [
        (f"Training sets drawn with data.seed={data['seed']}, held-out sets with data.seed + {TEST_SEED_OFFSET}; "
         f"training seeds {seeds(config)}."),
        ("final = held-out metric after the last epoch, best = the best epoch's value (mean over seeds; the "
         "per-epoch held-out curve is for plotting and never chooses a model); beats_baseline = the mean final "
         "score is better than the baseline by more than 10% of it."),
        ("budget = gradients computed (batches x epochs) for BPTT, guesses evaluated for random weight guessing "
         "(as many as the full-BPTT run of the same seed computed gradients)."),
        ("seconds = the trainer's wall time per run (gradients and updates, without the per-epoch held-out "
         "evaluation); for random weight guessing, the time of all its guesses."),
    ]
    if resume:
        notes.append("Resumed run (rbp run --resume): trainings finished before the interruption were loaded from "
                     "checkpoints/ instead of repeated, an interrupted one continued from its last epoch; the "
                     "held-out scores, budgets and curves are those of an uninterrupted run, the seconds of a "
                     "training add up the per-epoch training times recorded in each session.")
    for task in tasks:
        info = infos[task]
        if info["baseline_description"]:
            notes.append(f"{task}: baseline {info['baseline']:.4g} = {info['baseline_description']}.")
    baselines = {t: {k: v for k, v in infos[t].items()} for t in tasks}
    for b in baselines.values():
        b["references"] = {label: value for _, value, label in b["references"]}
    return {"experiment": NAME, "table": table, "runs": runs, "figures": figures, "notes": notes,
            "baselines": baselines}

