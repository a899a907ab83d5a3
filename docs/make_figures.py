"""Render the illustrative figures of the documentation into docs/img/.

Usage::

    python docs/make_figures.py

Only the figures that illustrate the math are made here; figures with results
(for example ``docs/img/gradient_error.png``) are written by the experiment
scripts in ``experiments/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

IMG = Path(__file__).resolve().parent / "img"


def stability_regions(path: Path) -> None:
    """Eigenvalue regions where the damped iteration x <- (1 - tau) x + tau F(x) converges.

    The linearised iteration matrix is (1 - tau) I + tau J, so an eigenvalue
    lambda of J is harmless when |1 - tau + tau lambda| < 1: a disc of centre
    1 - 1/tau and radius 1/tau, through lambda = 1. As tau -> 0 it fills the
    half-plane Re lambda < 1. The adjoint relaxation has the same spectrum
    (Pineda 1987), so the same regions govern the backward pass.
    """
    fig, ax = plt.subplots(figsize=(8.6, 4.2))
    t = np.linspace(0, 2 * np.pi, 400)
    colours = {1.0: "tab:blue", 0.5: "tab:orange", 0.3: "tab:green"}
    for tau, colour in colours.items():
        centre, radius = 1 - 1 / tau, 1 / tau
        ax.fill(centre + radius * np.cos(t), radius * np.sin(t), color=colour, alpha=0.12)
        label = r"$\tau = 1$: $\rho(J) < 1$ (plain iteration, Neumann)" if tau == 1 else rf"$\tau = {tau}$"
        ax.plot(centre + radius * np.cos(t), radius * np.sin(t), color=colour, lw=1.5, label=label)
    ax.axvline(1.0, color="k", ls="--", lw=1, label=r"$\tau \to 0$: Re $\lambda < 1$")
    gamma = 0.9
    ax.plot(gamma * np.cos(t), gamma * np.sin(t), color="tab:red", lw=1.2, ls=":",
            label=r"contraction $\|W\|_2\,\mathrm{Lip}(f) \leq 0.9$")
    ax.plot([-3.0], [0.0], "kx", ms=8)
    ax.annotate(r"$\lambda = -3$ (self-inhibition)", (-3.0, 0.0), (-7.2, 1.6),
                arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.plot([1.0], [0.0], "ko", ms=4)
    ax.set_xlim(-7.5, 2.5)
    ax.set_ylim(-3.6, 3.6)
    ax.set_aspect("equal")
    ax.set_xlabel(r"Re $\lambda(J)$")
    ax.set_ylabel(r"Im $\lambda(J)$")
    ax.set_title(r"Convergence of $x \leftarrow (1-\tau)x + \tau F(x)$ and of its adjoint")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    stability_regions(IMG / "stability_regions.png")
    print(f"wrote {IMG / 'stability_regions.png'}")


if __name__ == "__main__":
    main()
