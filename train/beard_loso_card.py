"""The beard card's leave-one-source-out section (``train card --loso A.json B.json``): a head
trained on every labelled man cannot be judged on them, so the card reports its recipe judged
fold by fold by ``train beard-loso`` (each source's men held out in turn, one results file a
seed), the folds pooled, and beside it the recipe trained on the labels of another CSV on the
same folds (``--train-csv``), when the results carry it."""

from __future__ import annotations

import json
from pathlib import Path

from train.beard_loso import nested_scores
from train.model_card import REAL_MEN_GOAL, pc, score_cell


def _row(r: dict) -> str:
    by = r["per_class"]
    return f"{score_cell(r['overall'])} | {score_cell(by['shaved'])} | {score_cell(by['unshaved'])}"


def _meets(r: dict) -> bool:
    o, cls = REAL_MEN_GOAL
    return r["overall"]["accuracy"] >= o and all(c["accuracy"] >= cls for c in r["per_class"].values())


def _mean_cell(cells: list[dict]) -> str:
    acc = [c["accuracy"] for c in cells]
    return f"{pc(sum(acc) / len(acc))} ({pc(min(acc))}–{pc(max(acc))})"


def _means(results: list[dict], recipe: str, key: str, other: str) -> list[str]:
    """Per fold and pooled, the mean over the seeds (lowest–highest seed) of each variant on the
    same men: what the labels the recipe adds to ``other``'s buy, class by class."""
    rows = [(fold, [r["folds"][fold] for r in results]) for fold in results[0]["folds"]]
    if all(r.get("pooled") for r in results):
        rows.append(("**pooled**", [r["pooled"] for r in results]))
    lines = [
        "",
        f"Means over the {len(results)} seeds (lowest–highest seed), every label against those of "
        f"{other} alone, on the same held-out men:",
        "",
        "| held out | labels | all | shaved | unshaved |",
        "|---|---|---|---|---|",
    ]
    for fold, fs in rows:
        for name, k in (("every CSV", recipe), (other, key)):
            cells = [f[k] for f in fs]
            lines.append(
                f"| {fold} | {name} | {_mean_cell([c['overall'] for c in cells])} | "
                + " | ".join(_mean_cell([c["per_class"][c2] for c in cells]) for c2 in ("shaved", "unshaved"))
                + " |"
            )
    return lines


def _pooled_means(results: list[dict]) -> list[str]:
    """Per model and judged set, the pooled figures' means over the seeds (lowest–highest)."""
    pools = [r["pooled"] for r in results if r.get("pooled")]
    if not pools or not any(len(nested_scores(r)) > 1 for r in pools[0].values()):
        return []
    lines = [
        "",
        f"Pooled, means over the {len(pools)} seeds (lowest–highest seed): each model on the men as "
        "photographed and on the same men with their faces seen smaller, as in video "
        "(`train/degrade.py`'s `at_face_width`; `--small-faces`):",
        "",
        "| model | judged on | all | shaved | unshaved |",
        "|---|---|---|---|---|",
    ]
    for who in pools[0]:
        for i, (said, _) in enumerate(nested_scores(pools[0][who])):
            cells = [nested_scores(p[who])[i][1] for p in pools]
            lines.append(
                f"| {who} | {said} | {_mean_cell([c['overall'] for c in cells])} | "
                + " | ".join(_mean_cell([c["per_class"][k] for c in cells]) for k in ("shaved", "unshaved"))
                + " |"
            )
    return lines


def loso_section(paths: list[Path], config: str, weight: float) -> list[str]:
    """Markdown lines: per results file (seed), the recipe ``config`` at ``weight`` on every fold
    and pooled, the other labels' variant beside it; the goal judged on each seed's pooled men."""
    recipe = f"{config}, real-men weight {weight:g}"
    results = [json.loads(Path(p).read_text()) for p in paths]
    if not results or any(recipe not in f for r in results for f in r["folds"].values()):
        raise ValueError(f"the leave-one-source-out results must score the recipe '{recipe}' on every fold")
    links = ", ".join(
        f"[seed {r['seed']}](../benchmarks/results/{Path(p).with_suffix('.md').name})"
        for p, r in zip(paths, results, strict=True)
    )
    prefix = recipe + ", labels of "
    first = next(iter(results[0]["folds"].values()))
    other = next((k[len(prefix) :] for k in first if k.startswith(prefix)), None)
    lines = [
        "**Leave-one-source-out** (`train beard-loso`, the men of "
        f"`{results[0]['csv']}`; {links}): each source's labelled men held out in turn, the recipe "
        "trained on CelebA's men and the labelled men of the other sources, then judged on the "
        "held-out ones; pooled: every labelled man judged by a head that never saw his source"
        + (f"; beside it, the recipe trained on the labels of {other} alone (same folds)" if other else "")
        + ". Accuracy, 95% Wilson CI:",
        "",
        "| held out | seed | all | shaved | unshaved |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for fold, f in r["folds"].items():
            lines.append(f"| {fold} | {r['seed']} | {_row(f[recipe])} |")
        if r.get("pooled"):
            lines.append(f"| **pooled** | {r['seed']} | {_row(r['pooled'][recipe])} |")
    if other:
        key = prefix + other
        lines += ["", f"The recipe trained on the labels of {other} alone, same folds:", ""]
        lines += ["| held out | seed | all | shaved | unshaved |", "|---|---|---|---|---|"]
        for r in results:
            for fold, f in r["folds"].items():
                lines.append(f"| {fold} | {r['seed']} | {_row(f[key])} |")
            if r.get("pooled"):
                lines.append(f"| **pooled** | {r['seed']} | {_row(r['pooled'][key])} |")
    if other and len(results) > 1:
        lines += _means(results, recipe, prefix + other, other)
    lines += _pooled_means(results)
    pooled = [r["pooled"][recipe] for r in results if r.get("pooled")]
    if pooled:
        met = sum(_meets(p) for p in pooled)
        lines += [
            "",
            f"Goal (issue #30): ≥ {pc(REAL_MEN_GOAL[0])} overall and ≥ {pc(REAL_MEN_GOAL[1])} for each "
            f"class on real men never trained on, judged on the pooled folds: met by {met} of "
            f"{len(pooled)} seeds{'' if met == len(pooled) else ' (**not met**)'}.",
        ]
        both = [p["unanimous"] for p in pooled if "unanimous" in p]
        if both:
            met = sum(_meets(p) for p in both)
            lines[-1] += (
                f" On the men two looks agree on: met by {met} of {len(both)} seeds"
                f"{'' if met == len(both) else ' (**not met**)'}."
            )
    return [*lines, ""]
