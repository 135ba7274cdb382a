"""The pipeline's pictures as PNG files: readable offline, in MLflow, in the README and in `dvc plots show`.

- :func:`pareto_png`: every scored candidate's search criterion against its GFLOPs, one colour per sub-space,
  the chosen students marked and named;
- :func:`glue_vs_cost_png`: the GLUE dev average of every model against its exact GFLOPs, teacher, students and
  random-init twins told apart (marker and colour), each student joined to its twin;
- :func:`loss_curve_png`: one SuperLM's training loss per step, titled with its sub-space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

KIND_STYLE = {  # marker, colour, legend label
    "teacher": ("D", "black", "teacher"),
    "student": ("o", "tab:blue", "student"),
    "random": ("x", "tab:gray", "random-init twin"),
}


def _figure(title: str, xlabel: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _log_x(ax) -> None:
    """A log x axis labelled in plain numbers (0.05, 0.1, 0.5), no crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")  # whatever the file's name (atomic writes use temporary names)
    plt.close(fig)


def pareto_png(rows_by_subspace: Mapping[str, Sequence[Mapping]], path: str | Path, convention: str = "exact",
               criterion: str = "held-out relation loss") -> None:
    """Candidates of every sub-space (``loss``, ``gflops_<convention>``, ``chosen``: the student's name or empty)."""
    fig, ax = _figure(f"Search: {criterion} against cost, chosen students starred",
                      f"GFLOPs per 128-token sequence ({convention}, log scale)", f"{criterion} (lower is better)")
    for sub, rows in rows_by_subspace.items():
        xs = [float(r[f"gflops_{convention}"]) for r in rows]
        ax.scatter(xs, [float(r["loss"]) for r in rows], s=14, alpha=0.6, label=f"{sub} ({len(rows)} candidates)")
        for r in rows:
            if r.get("chosen"):
                x, y = float(r[f"gflops_{convention}"]), float(r["loss"])
                ax.scatter([x], [y], s=160, marker="*", c="red", edgecolors="black", zorder=3)
                ax.annotate(f"{r['chosen']}: {r['arch']}", (x, y), xytext=(4, 4), textcoords="offset points",
                            fontsize=7)
    _log_x(ax)
    ax.legend(fontsize=8)
    _save(fig, path)


def glue_vs_cost_png(models: Mapping[str, Mapping], path: str | Path, tasks: Sequence[str] = ()) -> None:
    """``models``: name -> {kind, gflops_exact, glue_avg[, student]} (``metrics/summary.json``'s models)."""
    what = f"GLUE dev average ({', '.join(tasks)})" if tasks else "GLUE dev average"
    fig, ax = _figure("Students against their teacher and random-init twins", "GFLOPs (exact, log scale)", what)
    seen = set()
    for name, m in models.items():
        if m.get("gflops_exact") is None:
            continue
        marker, colour, label = KIND_STYLE.get(m["kind"], ("s", "tab:red", m["kind"]))
        ax.scatter([m["gflops_exact"]], [m["glue_avg"]], marker=marker, c=colour, s=50,
                   label=None if label in seen else label, zorder=3)
        seen.add(label)
        ax.annotate(name, (m["gflops_exact"], m["glue_avg"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
        twin = models.get(f"random-{name}")
        if m["kind"] == "student" and twin is not None:  # the distillation's gain, as a vertical segment
            ax.plot([m["gflops_exact"]] * 2, [twin["glue_avg"], m["glue_avg"]], c="tab:blue", alpha=0.4, lw=1)
    _log_x(ax)
    ax.legend(fontsize=8)
    _save(fig, path)


def loss_curve_png(history: Sequence[Mapping], path: str | Path, subspace: str, loss: str = "relation KL") -> None:
    """One SuperLM's curve (``step`` and ``loss_largest`` / ``loss_smallest`` / ``loss_mean`` per record)."""
    fig, ax = _figure(f"SuperLM training, sub-space {subspace}", "step", f"training loss ({loss})")
    steps = [int(r["step"]) for r in history]
    for key, label in (("loss_largest", "largest candidate"), ("loss_smallest", "smallest candidate"),
                       ("loss_mean", "mean over the step's candidates")):
        if any(r.get(key) not in (None, "") for r in history):
            ax.plot(steps, [float(r[key]) for r in history], label=label)
    if history:
        ax.legend(fontsize=8)
    else:  # a budget of no steps (the untrained ablation): an empty plot that says so
        ax.text(0.5, 0.5, "no training steps", ha="center", va="center", transform=ax.transAxes)
    _save(fig, path)
