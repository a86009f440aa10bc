"""Leave-one-source-out on the real men labelled by looking (``train beard-loso``): for each
fold (a source of ``train/real_men_beard.csv``, or several joined by ``+``), train the beard
recipe on CelebA's men and the labelled men of the other sources (``--real-men-test`` the
fold), and judge the fold's labelled men, never trained on: overall, per class and per age
band with 95% Wilson intervals, and beard2clean's flips. Beside each, variants (other
real-men weights or configurations) and a baseline model file on the same men. Writes
``<name>.json`` and ``<name>.md``. ``--csv A,B``: the labels of several CSVs read as one (e.g.
``train/real_men_beard_lfw2.csv``'s 720 more LFW men beside the CSV: the folds holding LFW out
train on the same men as with the CSV alone and are judged on more)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from train.model_card import pc, score_cell
from train.real_men import REAL_MEN_CSV, CsvFiles, add_labels_argument, csv_name, evaluate_real_men
from train.run_header import run_header
from train.sources import AGE_BANDS


def class_cells(r: dict) -> str:
    """A beard score's table cells: all (bold), shaved and unshaved, each with its 95% interval."""
    by = r["per_class"]
    return f"**{score_cell(r['overall'])}** | {score_cell(by['shaved'])} | {score_cell(by['unshaved'])}"


def fold_variant(
    fold: tuple[str, ...],
    shared: Path,
    out: Path,
    config: str,
    weight: float,
    seed: int,
    epochs: int,
    patience: int,
    csv_file: CsvFiles,
    cache_dir: Path,
    train_csv: CsvFiles | None = None,
    labels: str = "agreed",
    small_faces: tuple[int, ...] = (),
    train_labels: str = "first",
) -> dict[str, object]:
    """Train the recipe without ``fold``'s labelled men (of ``train_csv``, default ``csv_file``:
    an older set of labels, to see what new labels buy; on their ``train_labels``) and judge
    ``csv_file``'s (on their ``labels``; both as ``train.real_men.read_rows``)."""
    from train.fit import TrainOptions, train

    m = train(
        TrainOptions(
            task="beard",
            data=shared / "data" / "celeba",
            out=out,
            config=config,
            seed=seed,
            epochs=epochs,
            patience=patience,
            men_only=True,
            real_men=train_csv or csv_file,
            real_men_test=fold,
            real_men_weight=weight,
            real_men_labels=train_labels,
            progress=False,
            evaluate=False,
            cache_dir=cache_dir,
        )
    )
    from train.beard_cutoff import held_out_ceiling, validation_cutoff

    model = Path(str(m["model"]))
    return {
        **evaluate_real_men(model, shared, cache_dir, fold, csv_file, labels, small_faces),
        "validation_cutoff": validation_cutoff(model, shared, cache_dir, fold, csv_file, seed, labels),
        "ceiling": held_out_ceiling(model, shared, cache_dir, fold, csv_file, labels),
    }


def is_nested(key: str) -> bool:
    """Whether a model's score holds ``key`` as a score of its own men judged apart: those two
    looks agree on (``unanimous``), or their faces seen N px wide (``face<N>``)."""
    return key == "unanimous" or (key.startswith("face") and key[4:].isdigit())


def nested_scores(r: dict, said: str = "") -> list[tuple[str, dict]]:
    """A model's score and the scores nested in it (``is_nested``), depth first, each with what
    it judges: "every labelled man", "men two looks agree on", "faces seen 40 px wide", ..."""
    out = [(said or "every labelled man", r)]
    for k, sub in r.items():
        if is_nested(k):
            what = "men two looks agree on" if k == "unanimous" else f"faces seen {k[4:]} px wide"
            out += nested_scores(sub, f"{said}, {what}" if said else what)
    return out


def pooled(result: dict) -> dict[str, dict]:
    """Per model, the folds' held-out men counted together (each man judged by a head that never
    saw his source): overall and per class with 95% Wilson intervals, from the folds' confusion
    matrices. Only when no source is in two folds (``lfw;utkface;aaf``, not with ``aaf+lfw``)
    and a model is scored on every fold; ``{}`` otherwise."""
    from train.evaluate import wilson

    held = [s for fold in result["folds"] for s in fold.split("+")]
    if len(result["folds"]) < 2 or len(set(held)) < len(held):
        return {}
    models = [
        w for w in next(iter(result["folds"].values())) if all(w in f for f in result["folds"].values())
    ]

    def cell(k: int, n: int) -> dict:
        return {
            "accuracy": round(k / n, 4) if n else None,
            "n": n,
            "ci95": [round(x, 4) for x in wilson(k, n)],
        }

    def pool(scores: list[dict]) -> dict:
        cm = [[sum(f["confusion"][t][p] for f in scores) for p in (0, 1)] for t in (0, 1)]
        return {
            "overall": cell(cm[0][0] + cm[1][1], sum(map(sum, cm))),
            "per_class": {"shaved": cell(cm[0][0], sum(cm[0])), "unshaved": cell(cm[1][1], sum(cm[1]))},
            "confusion": cm,
        }

    def pool_all(scores: list[dict]) -> dict:
        """``pool`` of the scores, and of each score nested in them (unanimous, face<N>) alike."""
        out = pool(scores)
        for k in scores[0]:
            if is_nested(k) and all(k in f for f in scores):
                out[k] = pool_all([f[k] for f in scores])
        return out

    return {who: pool_all([f[who] for f in result["folds"].values()]) for who in models}


def pooled_head(result: dict, judged: str, columns: list[str]) -> list[str]:
    """The pooled table's lead-in (``judged``: by what, and what else to know) and header row."""
    return [
        "",
        f"Pooled over the folds {', '.join(result['folds'])} (every labelled man judged by {judged}):",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]


def _pooled_lines(result: dict) -> list[str]:
    pool = result.get("pooled") or {}
    if not pool:
        return []
    lines = pooled_head(
        result,
        "a head that never saw his source; a baseline model file saw some of them",
        ["model", "all (95% CI)", "shaved", "unshaved"],
    )
    for who, r in pool.items():
        lines.append(f"| {who} | {class_cells(r)} |")
        lines += [f"| {who}: {said} | {class_cells(sub)} |" for said, sub in nested_scores(r)[1:]]
    return lines


LABELS_SAID = {
    "agreed": "agreed by up to three independent looks, `train/real_men_looks.csv`",
    "first": "the CSVs' own, one look",
}


def markdown(result: dict) -> str:
    lines = [
        "Leave-one-source-out on the real men labelled by looking "
        f"(`{result.get('csv', REAL_MEN_CSV.name)}`; judged on the labels "
        f"{LABELS_SAID[result.get('labels', 'first')]}, trained on the labels "
        f"{LABELS_SAID[result.get('train_labels', result.get('labels', 'first'))]}): each fold's men are "
        "never trained on; the "
        "recipe trains on CelebA's men and the labelled men of "
        f"the other sources (seed {result['seed']}; `labels of X`: trained on the labelled men of the "
        f"CSV X instead); `{result['command']}` at {result['commit']}, "
        f"{result['started']}, load average {result['load_average'][0]:.1f} (2 shared cores).",
        "",
        "| fold (held out) | model | all (95% CI) | shaved | unshaved | beard2clean flips / ordered |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in result["folds"].items():
        for who, r in f.items():
            b = r["beard2clean"]
            lines.append(
                f"| {name} | {who} | {class_cells(r)} | {b['flips']} / {b['ordered']} of {b['pairs']} |"
            )
    lines += _pooled_lines(result)
    lines += ["", "Per age band (faces whose source gives an age; accuracy, faces):", ""]
    lines += ["| fold / model | " + " | ".join(AGE_BANDS) + " |", "|---|" + "---|" * len(AGE_BANDS)]
    for name, f in result["folds"].items():
        for who, r in f.items():
            if not r["per_age"]:
                continue
            cells = [r["per_age"].get(b) for b in AGE_BANDS]
            lines.append(
                f"| {name}: {who} | "
                + " | ".join(f"{pc(c['accuracy'])} n={c['n']}" if c else "–" for c in cells)
                + " |"
            )
    return "\n".join(lines + _cutoff_lines(result)) + "\n"


def _cutoff_lines(result: dict) -> list[str]:
    """The cut-off table (``train/beard_cutoff.py``), for results that carry it."""
    rows = [(n, w, r) for n, f in result["folds"].items() for w, r in f.items() if "ceiling" in r]
    if not rows:
        return []
    lines = [
        "",
        "Cut-offs on p(unshaved) (`train/beard_cutoff.py`): each trained head at the cut-off with the "
        "best mean per-class recall on its own validation split (CelebA's validation men and the real "
        "men's validation people; the held-out men never pick it), and the ceiling: over every "
        "cut-off, the best of the two classes' lower recall on the held-out men (picked on them, so "
        "a bound, not a recipe: under the goal, no cut-off meets it).",
        "",
        "| fold (held out) | model | validation cut-off | all | shaved | unshaved | ceiling (at cut-off) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, who, r in rows:
        c, v = r["ceiling"], r.get("validation_cutoff")
        cells = (
            [
                f"{v['cutoff']:.2f}",
                score_cell(v["overall"]),
                score_cell(v["per_class"]["shaved"]),
                score_cell(v["per_class"]["unshaved"]),
            ]
            if v
            else ["–"] * 4
        )
        lines.append(
            f"| {name} | {who} | "
            + " | ".join(cells)
            + f" | {pc(c['min_class_recall'])} ({c['cutoff']:.2f}) |"
        )
    return lines


def run(
    folds: tuple[str, ...],
    out: Path,
    shared: Path,
    variants: tuple[tuple[str, float], ...],
    baseline: Path | None = None,
    seed: int = 0,
    epochs: int = 40,
    patience: int = 4,
    name: str = "beard-loso",
    command: str = "",
    csv_file: CsvFiles = REAL_MEN_CSV,
    cache_dir: Path | None = None,
    train_csv: CsvFiles | None = None,
    labels: str = "agreed",
    small_faces: tuple[int, ...] = (),
    train_labels: str = "first",
) -> dict[str, object]:
    """Every fold x every (config, weight) variant (each also trained on ``train_csv``'s labels
    when given); writes ``<name>.json`` and ``.md`` in
    ``out`` after each fold. Models go to ``out/<name>-runs/``."""
    from train.crops import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {
        **run_header(command),
        "seed": seed,
        "csv": csv_name(csv_file),
        "labels": labels,
        "train_labels": train_labels,
        "train_csv": csv_name(train_csv) if train_csv else None,
        "folds": {},
    }
    for fold in folds:
        held = tuple(fold.split("+"))
        scores: dict[str, object] = {}
        if baseline is not None:
            from train.beard_cutoff import held_out_ceiling

            scores[f"baseline {baseline.name}"] = {
                **evaluate_real_men(baseline, shared, cache_dir, held, csv_file, labels, small_faces),
                "ceiling": held_out_ceiling(baseline, shared, cache_dir, held, csv_file, labels),
            }
        for config, weight in variants:
            runs = out / f"{name}-runs" / f"without-{fold}-{config}-w{weight:g}"
            fixed = (config, weight, seed, epochs, patience, csv_file, cache_dir)
            judged = (labels, small_faces, train_labels)
            scores[f"{config}, real-men weight {weight:g}"] = fold_variant(
                held, shared, runs, *fixed, None, *judged
            )
            if train_csv is not None:
                key = f"{config}, real-men weight {weight:g}, labels of {csv_name(train_csv)}"
                more = runs.with_name(runs.name + "-train-csv")
                scores[key] = fold_variant(held, shared, more, *fixed, train_csv, *judged)
        result["folds"][fold] = scores  # type: ignore[index]
        result["pooled"] = pooled(result)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        (out / f"{name}.md").write_text(markdown(result))
    return result


def csv_list(text: str) -> tuple[Path, ...]:
    """``A.csv,B.csv``: the CSVs whose rows are read one after another as one list of men;
    ``all``: every CSV of labelled men (``train.real_men.REAL_MEN_CSVS``)."""
    from train.real_men import REAL_MEN_CSVS

    return REAL_MEN_CSVS if text == "all" else tuple(Path(x) for x in text.split(",") if x)


def add_parser(sub: argparse._SubParsersAction) -> None:
    bl = sub.add_parser("beard-loso", help="the beard recipe leave-one-source-out on the real men")
    bl.add_argument("--folds", default="lfw;utkface;aaf;aaf+lfw", help="';'-separated, '+' joins sources")
    bl.add_argument("--variants", default="dlib_resnet_all:0.3", help="CONFIG:REAL_MEN_WEIGHT,...")
    bl.add_argument("--baseline", type=Path, default=None, help="model file to score on the same men")
    bl.add_argument(
        "--csv",
        type=csv_list,
        default=(REAL_MEN_CSV,),
        help="CSV[,CSV...] or all: the labelled men (default: the CSV)",
    )
    bl.add_argument(
        "--train-csv",
        type=csv_list,
        default=None,
        help="CSV[,CSV...] or all: also train each variant on these labels",
    )
    add_labels_argument(bl, "--labels", "agreed")
    add_labels_argument(
        bl, "--train-labels", "first", "the labels each variant trains on (--labels: those it is judged on)"
    )
    bl.add_argument(
        "--small-faces",
        default="",
        help="N[,N...]: also judge every model on the men's faces seen N px wide, as in video (e.g. 40,64)",
    )
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--out", type=Path, default=Path("runs") / "beard-loso")
    bl.add_argument("--name", default="beard-loso", help="file stem of the .json and .md written in --out")


def main(args: argparse.Namespace, shared: Path) -> int:
    from train.architectures import CONFIGS

    variants = tuple((c, float(w)) for c, w in (v.split(":") for v in args.variants.split(",")))
    bad = [c for c, _ in variants if c not in CONFIGS]
    if bad:
        print(f"train: error: unknown config(s) {bad}", file=sys.stderr)
        return 2
    folds = tuple(f for f in args.folds.split(";") if f)
    cmd = "train " + " ".join(sys.argv[1:])
    run(
        folds,
        args.out,
        shared,
        variants,
        args.baseline,
        args.seed,
        name=args.name,
        command=cmd,
        csv_file=args.csv,
        train_csv=args.train_csv,
        labels=args.labels,
        train_labels=args.train_labels,
        small_faces=tuple(int(x) for x in args.small_faces.split(",") if x),
    )
    print((args.out / f"{args.name}.md").read_text())
    return 0
