"""The tables of ``train beard-finetune``'s results file: every fold, seed, model and threshold;
the means over the seeds; and, when the folds hold every source once (``utkface;lfw;aaf``), each
seed's folds pooled (every labelled man judged by models that never saw his source, counted
together as ``train beard-loso`` pools them) with each fine-tuned model's gain over the frozen
head of the same seed, splits and threshold rule."""

from __future__ import annotations

import numpy as np

from train.beard_loso import class_cells, pooled, pooled_head
from train.model_card import pc

CUTS = (", real men's validation threshold", ", validation threshold")  # longest first


def pooled_by_seed(result: dict) -> dict[str, dict]:
    """{seed: ``train.beard_loso.pooled`` of that seed's folds}, for the seeds every fold has;
    ``{}`` when a source is in two folds or there is one fold."""
    folds = result["folds"]
    seeds = [r["seed"] for r in next(iter(folds.values()), [])]
    out: dict[str, dict] = {}
    for seed in seeds:
        runs = {f: [r for r in rs if r["seed"] == seed] for f, rs in folds.items()}
        if all(runs.values()):
            p = pooled({"folds": {f: rs[0]["scores"] for f, rs in runs.items()}})
            if p:
                out[str(seed)] = p
    return out


def frozen_of(who: str) -> str:
    """The frozen head's row scored at the same threshold rule as ``who``'s."""
    return "frozen" + next((c for c in CUTS if who.endswith(c)), "")


def markdown(result: dict) -> str:
    lines = [
        "The last 1-2 blocks of dlib's ResNet fine-tuned under the beard head (learning rate lr; "
        "`lower-face pooled`: the head also takes the last map's lower-face row) vs the frozen shipped "
        "recipe (`dlib_resnet_all`, CelebA men + real men of the other sources at weight 0.3), "
        "leave-one-source-out on the real men labelled by looking "
        f"(`{result.get('csv', 'real_men_beard.csv')}`); "
        f"`{result['command']}` at {result['commit']}, {result['started']}, "
        f"load average {result['load_average'][0]:.1f} (2 shared cores). `validation threshold`: "
        "the cut-off on p(unshaved) with the best balanced accuracy on the validation split (CelebA's "
        "men and the real men's validation people); `real men's validation threshold`: on the real "
        "men's validation people only. The held-out fold never picks a threshold.",
        "",
        "| fold (held out) | seed | model | threshold | all (95% CI) | shaved | unshaved "
        "| beard2clean flips / ordered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold, runs in result["folds"].items():
        for run in runs:
            for who, r in run["scores"].items():
                bc = r["beard2clean"]
                lines.append(
                    f"| {fold} | {run['seed']} | {who} | {r['threshold']:.2f} | {class_cells(r)} | "
                    f"{bc['flips']} / {bc['ordered']} of {bc['pairs']} |"
                )
    lines += ["", "Mean over the seeds (accuracy):", ""]
    lines += ["| fold (held out) | model | all | shaved | unshaved |", "|---|---|---|---|---|"]
    for fold, runs in result["folds"].items():
        for who in runs[0]["scores"]:
            rs = [r["scores"][who] for r in runs]
            acc = [np.mean([r[k]["accuracy"] for r in rs]) for k in ("overall",)] + [
                np.mean([r["per_class"][c]["accuracy"] for r in rs]) for c in ("shaved", "unshaved")
            ]
            lines.append(f"| {fold} | {who} ({len(rs)} seeds) | " + " | ".join(pc(a) for a in acc) + " |")
    lines += _pooled_lines(result)
    lines += ["", "Training:", ""]
    for fold, runs in result["folds"].items():
        for f in runs:
            lines.append(
                f"- {fold}, seed {f['seed']}: {f['n_train']} training / {f['n_val']} validation faces; "
                f"frozen head {f['frozen_epochs']} epochs ({f['seconds_frozen']:.0f} s)"
            )
            for who, t in f["finetuned"].items():
                lines.append(
                    f"  - {who}: best epoch {t['best_epoch']} of {len(t['history']) - 1} "
                    f"({t['seconds']:.0f} s); "
                    f"validation loss {t['history'][0]['val_loss']:.4f} -> {t['best_val_loss']:.4f}; "
                    f"start agreement {100 * t['start_agreement']:.2f}%"
                )
    return "\n".join(lines) + "\n"


def _pooled_lines(result: dict) -> list[str]:
    pool = result.get("pooled") or {}
    if not pool:
        return []
    lines = pooled_head(
        result,
        "models that never saw his source; `gain`: unshaved recall minus the frozen head's of the "
        "same seed and threshold rule, in points",
        ["seed", "model", "all (95% CI)", "shaved", "unshaved", "unshaved gain"],
    )
    for seed, models in pool.items():
        for who, r in models.items():
            gain = (
                r["per_class"]["unshaved"]["accuracy"]
                - models[frozen_of(who)]["per_class"]["unshaved"]["accuracy"]
            )
            lines.append(f"| {seed} | {who} | {class_cells(r)} | {100 * gain:+.1f} |")
    lines += ["", f"Pooled, mean over the {len(pool)} seeds (accuracy):", ""]
    lines += ["| model | all | shaved | unshaved | unshaved gain, min over seeds |", "|---|---|---|---|---|"]
    first = next(iter(pool.values()))
    for who in first:
        rs = [m[who] for m in pool.values()]
        acc = [np.mean([r["overall"]["accuracy"] for r in rs])] + [
            np.mean([r["per_class"][c]["accuracy"] for r in rs]) for c in ("shaved", "unshaved")
        ]
        gains = [
            m[who]["per_class"]["unshaved"]["accuracy"]
            - m[frozen_of(who)]["per_class"]["unshaved"]["accuracy"]
            for m in pool.values()
        ]
        lines.append(f"| {who} | " + " | ".join(pc(a) for a in acc) + f" | {100 * min(gains):+.1f} |")
    return lines
