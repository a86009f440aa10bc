"""Leave-one-source-out evaluation (``train loso``): for each source X, train the recipe on all
the other sources and score it on every face of X, which it never saw; beside it, a baseline
model file (today's shipped head) on the same faces. Writes ``loso.json`` and ``loso.md``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from train.data import GENDER_RULE, split_indices
from train.multi import evaluate_features, load_multi, take
from train.sources import AGE_BANDS, SOURCES


def run_loso(
    config: str,
    out: Path,
    shared: Path,
    sources: tuple[str, ...] = SOURCES,
    held_out: tuple[str, ...] | None = None,
    baseline: Path | None = None,
    seed: int = 0,
    epochs: int = 40,
    patience: int = 4,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, object]:
    from train.fit import TrainOptions, train

    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"config": config, "sources": list(sources), "seed": seed, "folds": {}}
    for x in held_out or sources:
        others = tuple(s for s in sources if s != x)
        m = train(
            TrainOptions(
                task="gender",
                data=shared,
                out=out / f"without-{x}",
                config=config,
                seed=seed,
                epochs=epochs,
                patience=patience,
                test_fraction=0.0,
                cache_dir=cache_dir,
                progress=progress,
                evaluate=False,
                sources=others,
            )
        )
        faces, feats = load_multi((x,), shared, GENDER_RULE, cache_dir, progress)
        fold = {"trained_on": list(others), "test": evaluate_features(Path(str(m["model"])), faces, feats)}
        if baseline is not None:
            if x == "celeba":  # the CelebA-only baseline saw the rest of CelebA: its test split only
                te = split_indices(len(faces), 0.1, 0.2, 0)[2]
                faces, feats = faces.subset(te), take(feats, te)
                fold["test_split_only"] = evaluate_features(Path(str(m["model"])), faces, feats)
            fold["baseline"] = evaluate_features(baseline, faces, feats)
        result["folds"][x] = fold  # type: ignore[index]
        (out / "loso.json").write_text(json.dumps(result, indent=2))
    (out / "loso.md").write_text(markdown(result))
    return result


def _pct(d: dict | None, key: str = "accuracy") -> str:
    if not d:
        return "–"
    lo, hi = d.get("ci95") or d.get("accuracy_ci95") or (None, None)
    v = d[key]
    return f"{100 * v:.1f}% ({100 * lo:.1f}–{100 * hi:.1f})" if lo is not None else f"{100 * v:.1f}%"


def _recall(s: dict, lab: str) -> str:
    c = s["per_class"][lab]
    lo, hi = c["recall_ci95"]
    return f"{100 * c['recall']:.1f}% ({100 * lo:.1f}–{100 * hi:.1f})"


def summary_rows(name: str, s: dict) -> str:
    ages = s.get("by_age") or {}
    judged = {k: v for k, v in ages.items() if v["n"] >= 20}
    worst = min(judged.items(), key=lambda kv: kv[1]["accuracy"]) if judged else None
    w = f"{worst[0]}: {100 * worst[1]['accuracy']:.1f}% (n={worst[1]['n']})" if worst else "–"
    return (
        f"| {name} | {s['n_images']} | {_pct(s)} | {_recall(s, 'female')} | {_recall(s, 'male')} "
        f"| {w} | {s['ece']:.3f} | {100 * s['shown']:.1f}% / {100 * (s['accuracy_shown'] or 0):.1f}% |"
    )


def markdown(result: dict) -> str:
    lines = [
        f"Leave-one-source-out, `{result['config']}`, seed {result['seed']}: trained on the other sources, "
        "tested on every face of the held-out one.",
        "",
        "| held out / model | faces | accuracy (95% CI) | women's recall | men's recall | worst age band "
        "| ECE | shown at p ≥ 0.6 / their accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    folds = result["folds"]
    for x, f in folds.items():
        lines.append(summary_rows(f"**{x}**: new recipe", f["test"]))
        if "test_split_only" in f:
            lines.append(summary_rows(f"{x} (test split): new recipe", f["test_split_only"]))
        if "baseline" in f:
            lines.append(
                summary_rows(f"{x}{' (test split)' if x == 'celeba' else ''}: shipped", f["baseline"])
            )
    lines += ["", "Per age band (accuracy, 95% CI, faces):", ""]
    lines += ["| held out / model | " + " | ".join(AGE_BANDS) + " |", "|---|" + "---|" * len(AGE_BANDS)]
    for x, f in folds.items():
        for who, s in (("new", f["test"]), ("shipped", f.get("baseline"))):
            if not s or not s["by_age"]:
                continue
            cells = [s["by_age"].get(b) for b in AGE_BANDS]
            lines.append(
                f"| {x}: {who} | " + " | ".join(f"{_pct(c)} n={c['n']}" if c else "–" for c in cells) + " |"
            )
    lines += ["", "Per gender and age band (recall):", ""]
    lines += ["| held out / model | " + " | ".join(AGE_BANDS) + " |", "|---|" + "---|" * len(AGE_BANDS)]
    for x, f in folds.items():
        for who, s in (("new", f["test"]), ("shipped", f.get("baseline"))):
            if not s or not s["by_label_age"]:
                continue
            for g in ("female", "male"):
                cells = [s["by_label_age"].get(f"{g} {b}") for b in AGE_BANDS]
                lines.append(
                    f"| {x}, {g}: {who} | "
                    + " | ".join(f"{100 * c['accuracy']:.0f}% n={c['n']}" if c else "–" for c in cells)
                    + " |"
                )
    races = sorted({r for f in folds.values() for r in f["test"]["by_race"]})
    if races:
        lines += ["", "Per ethnic group (where the source labels it):", ""]
        lines += ["| held out / model | " + " | ".join(races) + " |", "|---|" + "---|" * len(races)]
        for x, f in folds.items():
            for who, s in (("new", f["test"]), ("shipped", f.get("baseline"))):
                if s and s["by_race"]:
                    lines.append(
                        f"| {x}: {who} | "
                        + " | ".join(
                            f"{_pct(s['by_race'][r])} n={s['by_race'][r]['n']}" if r in s["by_race"] else "–"
                            for r in races
                        )
                        + " |"
                    )
    lines += ["", "Reliability (winning probability bin: faces, mean p, accuracy), new recipe:", ""]
    for x, f in folds.items():
        rel = "; ".join(
            f"{b['bin'][0]:.2f}–{b['bin'][1]:.2f}: {b['n']}, {b['mean_p']:.2f}, {100 * b['accuracy']:.1f}%"
            for b in f["test"]["reliability"]
        )
        lines.append(f"- {x} (ECE {f['test']['ece']:.3f}): {rel}")
    return "\n".join(lines) + "\n"


def mean_accuracy(result: dict) -> float:
    return float(np.mean([f["test"]["accuracy"] for f in result["folds"].values()]))
