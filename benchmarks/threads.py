"""BLAS threads: a training run used as a library is as fast as under ``rbp run``, on a busy machine.

Claim measured (issue "open extension points"): with a background CPU load on
the machine, a library-level training run (``rbp.Trainer`` with its default
``threads="auto"``) takes <= 1.2x the time of the same run with one BLAS thread,
which is what ``rbp run`` uses (``--threads 1``). The row "library default
BLAS threads" (``threads=None``: OpenBLAS splits every product over all cores,
what the library did before) shows what the automatic limit avoids.

The work: one epoch of an Elman net (``rbp.ElmanRNN``), T=40 steps, H=128
hidden units, batch 64, 256 sequences, BPTT, Adam; and one epoch of the
``rbp compare`` recurrent net (``FixedPointNet(64, 100, 10)``, Anderson +
GMRES) on 512 digits-sized inputs. The background load is a pure-Python busy
loop in another process, pinned to nothing, for the whole measurement; all
three settings are timed interleaved in one process (``_common.interleaved``)
and reported as medians with paired ratios.

Run: ``python benchmarks/threads.py`` (``--quick`` for fewer repeats,
``--no-load`` to measure on an idle machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, header, interleaved, median, paired_ratio, table  # noqa: E402

BAR = 1.2


def _elman_epoch(threads):
    import rbp

    gen = np.random.default_rng(0)
    X = gen.normal(size=(256, 40, 8))
    Y = gen.normal(size=(256, 40, 2))
    net = rbp.ElmanRNN(8, 128, 2)
    trainer = rbp.Trainer(net, "adam", learning_rate=1e-3, epochs=1, batch_size=64, threads=threads, progress=False)
    theta0 = net.init(0)
    return lambda: trainer.fit(X, Y, theta=theta0, rng=0)


def _fixedpoint_epoch(threads):
    import rbp

    gen = np.random.default_rng(0)
    X = gen.normal(size=(512, 64))
    y = gen.integers(10, size=512)
    net = rbp.FixedPointNet(64, 100, 10, loss="cross_entropy", contraction=0.9, on_failure="ignore")
    trainer = rbp.RecurrentTrainer(net, epochs=1, batch_size=32, threads=threads, progress=False)
    theta0 = net.init(0)
    return lambda: trainer.fit(X, y, theta=theta0, rng=0)


def _background_load():
    """A busy loop in another process: the machine is shared, as users' machines are."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--no-load", action="store_true", help="no background CPU load")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else 7
    print(header("benchmarks/threads.py: BLAS threads of a library-level training run"))
    load = None if args.no_load else _background_load()
    print("background load: " + ("none" if load is None else f"a busy loop in process {load.pid}"))
    results = []
    try:
        for name, make in (("Elman epoch (T=40, H=128, batch 64)", _elman_epoch),
                           ("FixedPointNet epoch (100 units, batch 32)", _fixedpoint_epoch)):
            methods = {
                "threads='auto' (library default)": make("auto"),
                "threads=1 (as rbp run)": make(1),
                "threads=None (BLAS default, the old library)": make(None),
            }
            samples = interleaved(methods, repeats, min_time=0.2)
            base = samples["threads=1 (as rbp run)"]
            rows = [[k, f"{median(v) * 1e3:.1f}", f"{paired_ratio(v, base):.2f}x"] for k, v in samples.items()]
            print(f"\n{name}\n" + table(["setting", "median ms", "/ threads=1"], rows))
            ratio = paired_ratio(samples["threads='auto' (library default)"], base)
            line, ok = claim(f"{name}: library run / rbp run (time)", ratio, BAR, higher_is_better=False)
            results.append((line, ok))
    finally:
        if load is not None:
            load.kill()
            load.wait()
    print("\nclaims")
    for line, _ in results:
        print(line)
    failed = sum(ok is False for _, ok in results)
    print(f"{failed} claim(s) failed" if failed else "all measured claims pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
