"""``train``: train, evaluate and inspect the service's face classifiers.

    train gender --data ../shared/data/celeba --out runs/gender     # the shipped recipe (dlib_resnet)
    train beard  --data my_faces/ --out runs/beard                   # your own faces, one folder per label
    train gender --config gender_tutorial --out runs/gender-tutorial # another architecture
    train gender --sources celeba,utkface,lfw,aaf --out runs/gender-sources  # several sources, balanced
    train loso --config dlib_resnet --baseline models/gender.keras   # leave-one-source-out table
    train finetune --folds all,utkface,aaf --blocks 2 # fine-tuned last ResNet blocks vs the frozen head
    train variants --name ls10 --set ls=0.1           # a gender head variant, full mix and LOSO folds
    train variants --score base --score base,s1,s2    # its scores (a,b: mean of heads), T 1 and fitted
    train evaluate --model models/gender.keras --data ../shared/data/celeba --split test
    train evaluate --model models/gender.keras --data train/other_faces.json
    train inspect --model models/gender.keras face.jpg
    train card --metrics runs/gender/metrics.json --out models/gender.md --speed
    train speed --model models/gender.keras
    train real-men --model models/beard.keras                        # real men labelled by looking
    train beard-loso --baseline models/beard.keras   # beard recipe, leave-one-source-out on real men
    train beard-loso --csv train/real_men_beard.csv,train/real_men_beard_lfw2.csv  # more held-out men

Exit codes: 0 success, 2 bad data or model file (the message says what and where).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from train.architectures import CONFIGS
from train.degrade import KINDS
from train.fit import TASKS
from train.real_men import add_labels_argument


def _shared() -> Path:
    env = os.environ.get("STREAMER_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    default_data = _shared() / "data" / "celeba"
    for task, cfg, what in (
        ("gender", TASKS["gender"][1], "female / male (CelebA Male)"),
        (
            "beard",
            TASKS["beard"][1],
            "shaved / unshaved (CelebA No_Beard, 5_o_Clock_Shadow, Goatee, Mustache)",
        ),
    ):
        t = sub.add_parser(task, help=f"train the {what} classifier")
        t.add_argument(
            "--data",
            type=Path,
            default=default_data,
            help="CelebA folder, class-subfolder tree, or pickled DataFrame (.pkl) (default: %(default)s)",
        )
        t.add_argument(
            "--config", choices=sorted(CONFIGS), default=cfg, help="architecture (default: %(default)s)"
        )
        t.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<task>-<config>)")
        t.add_argument(
            "--model", type=Path, default=None, help="model file to write (default: <out>/model.keras)"
        )
        t.add_argument("--epochs", type=int, default=40, help="at most (default: %(default)s)")
        t.add_argument("--batch-size", type=int, default=64)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument(
            "--patience", type=int, default=4, help="early-stopping patience in epochs (default: %(default)s)"
        )
        t.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's)")
        t.add_argument(
            "--detector", default="mmod", help="face detector: mmod or dlib (default: %(default)s)"
        )
        t.add_argument("--upsample", type=int, default=1, help="detector upsampling (default: %(default)s)")
        t.add_argument(
            "--test-fraction",
            type=float,
            default=0.1,
            help="fixed hold-out: the last fraction of images by name (default: %(default)s)",
        )
        t.add_argument("--val-fraction", type=float, default=0.2, help="of the rest (default: %(default)s)")
        t.add_argument(
            "--no-face",
            choices=("skip", "whole"),
            default="skip",
            help="images without a detected face: leave out of training, or train on them whole",
        )
        t.add_argument("--limit", type=int, default=None, help="use only the first N images")
        t.add_argument(
            "--sources",
            default=None,
            help="train on several shared sources instead of --data, comma-separated "
            "(celeba,utkface,lfw,aaf), from ../shared (or --data if given as a folder holding data/): "
            "balanced by source, label and age band, split by person",
        )
        if task == "beard":
            t.add_argument(
                "--men-only", action="store_true", help="train on CelebA's men only (the head runs on men)"
            )
            from train.beard_loso import csv_list

            t.add_argument(
                "--real-men",
                type=csv_list,
                default=None,
                help="CSV[,CSV...] or all (every train/real_men_beard*.csv): real men labelled by looking",
            )
            t.add_argument(
                "--real-men-test",
                default="",
                help="sources of --real-men never trained on, judged instead (e.g. lfw,aaf)",
            )
            t.add_argument(
                "--real-men-weight",
                type=float,
                default=0.3,
                help="the real men's total training weight relative to CelebA's (default: %(default)s)",
            )
            add_labels_argument(t, "--real-men-labels", "first")
        t.add_argument("--weights", default=None, help="local VGG16 notop weights file for --config vgg16")
        t.add_argument("--cache-dir", type=Path, default=None, help="crop cache (default: .cache/)")
        t.add_argument("--no-eval", action="store_true", help="skip evaluating the saved model")
        t.add_argument("--quiet", action="store_true", help="no progress bars")
    e = sub.add_parser("evaluate", help="evaluate a model file on a data set; JSON summary on stdout")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CelebA folder, folder with one subfolder per label, pickled DataFrame, or a face "
        "annotation file (.json, e.g. train/other_faces.json: faces from other sources)",
    )
    e.add_argument(
        "--split",
        choices=("all", "test", "val", "train"),
        default="all",
        help="the whole data set, or a split recorded in the model file (default: all)",
    )
    e.add_argument("--report", type=Path, default=None, help="report folder (default: <model>-report/)")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--detector", default="mmod", help="face detector: mmod or dlib (default: %(default)s)")
    e.add_argument("--cache-dir", type=Path, default=None)
    e.add_argument(
        "--degrade",
        choices=tuple(KINDS),
        default=None,
        help="degrade every image as video would (after detection) to measure robustness",
    )
    e.add_argument("--quiet", action="store_true")
    i = sub.add_parser("inspect", help="activation maps of one image and a model diagram")
    i.add_argument("--model", type=Path, required=True)
    i.add_argument("image", type=Path)
    i.add_argument("--out", type=Path, default=None, help="output folder (default: <model>-inspect/)")
    c = sub.add_parser("card", help="write a model card (Markdown) from a run's metrics.json")
    c.add_argument("--metrics", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--speed", action="store_true", help="measure faces/s of the model and include it")
    c.add_argument(
        "--compare", type=Path, nargs="*", default=None, help="other runs' metrics.json to tabulate"
    )
    c.add_argument("--train-command", default=None, help="the training command to print under Reproduce")
    c.add_argument(
        "--loso", type=Path, nargs="*", default=None, help="beard: train beard-loso results .json, one a seed"
    )
    lo = sub.add_parser("loso", help="leave-one-source-out evaluation of a gender recipe")
    lo.add_argument("--config", choices=sorted(CONFIGS), default=TASKS["gender"][1])
    lo.add_argument("--sources", default="celeba,utkface,lfw,aaf")
    lo.add_argument("--held-out", default=None, help="only these folds (default: every source)")
    lo.add_argument("--baseline", type=Path, default=None, help="model file to score on the same faces")
    lo.add_argument("--seed", type=int, default=0)
    lo.add_argument("--out", type=Path, default=None, help="default: runs/loso-<config>")
    ft = sub.add_parser("finetune", help="fine-tune the ResNet's last blocks for gender vs the frozen head")
    ft.add_argument(
        "--folds", default="all,utkface,aaf", help="'all' (10%% test split) and/or held-out sources"
    )
    ft.add_argument("--blocks", type=int, choices=(1, 2, 3), default=2)
    ft.add_argument("--lr", type=float, default=3e-5)
    ft.add_argument("--epochs", type=int, default=8)
    ft.add_argument("--patience", type=int, default=2)
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--out", type=Path, default=Path("runs") / "finetune")
    ft.add_argument("--no-variants", action="store_true", help="skip CelebA x2 and the 5-head mean")
    ft.add_argument("--name", default="finetune", help="file stem of the .json and .md written in --out")
    from train.beard_finetune import add_parser as add_beard_finetune
    from train.beard_loso import add_parser as add_beard_loso
    from train.beard_loso import csv_list
    from train.variants import add_parser as add_variants

    add_variants(sub)
    add_beard_finetune(sub)
    r = sub.add_parser("real-men", help="a beard model on the real men labelled by looking; JSON on stdout")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--sources", default="", help="only these sources (default: all: lfw,utkface,aaf)")
    r.add_argument("--csv", type=csv_list, default=None, help="CSV[,CSV...] or all (default: the CSV)")
    add_labels_argument(r, "--labels", "agreed")
    add_beard_loso(sub)
    s = sub.add_parser("speed", help="Classifier.predict_proba faces/s at batch 1 and 32")
    s.add_argument("--model", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from streamer.classify import ModelFileError
    from train.data import DataError

    folders = [getattr(args, "report", None)] + (
        [getattr(args, "out", None)] if args.command != "card" else []
    )
    for folder in (f for f in folders if f is not None):
        try:  # (before a run of minutes, not after it)
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"train: error: {folder}: cannot make the folder ({e.strerror or e})", file=sys.stderr)
            return 2
    try:
        return _run(args)
    except (DataError, ModelFileError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in ("gender", "beard"):
        from train.fit import TrainOptions, train

        out = args.out or Path("runs") / f"{args.command}-{args.config}"
        sources = tuple(x for x in (args.sources or "").split(",") if x)
        if sources:
            from train.sources import SOURCES

            bad = [x for x in sources if x not in SOURCES]
            if bad:
                print(f"train: error: unknown source(s) {bad}; choose from {list(SOURCES)}", file=sys.stderr)
                return 2
            if args.data == _shared() / "data" / "celeba" or not (args.data / "data").is_dir():
                args.data = _shared()
        m = train(
            TrainOptions(
                task=args.command,
                data=args.data,
                out=out,
                config=args.config,
                model_path=args.model,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                patience=args.patience,
                learning_rate=args.lr,
                detector=args.detector,
                upsample=args.upsample,
                test_fraction=args.test_fraction,
                val_fraction=args.val_fraction,
                no_face=args.no_face,
                limit=args.limit,
                weights=args.weights,
                cache_dir=args.cache_dir,
                progress=not args.quiet,
                evaluate=not args.no_eval,
                sources=sources,
                men_only=getattr(args, "men_only", False),
                real_men=getattr(args, "real_men", None),
                real_men_test=tuple(x for x in getattr(args, "real_men_test", "").split(",") if x),
                real_men_weight=getattr(args, "real_men_weight", 0.3),
                real_men_labels=getattr(args, "real_men_labels", "first"),
            )
        )
        brief = {k: v for k, v in m.items() if k != "history"}
        for k in ("val", "test"):
            if isinstance(brief.get(k), dict):
                brief[k] = {
                    x: brief[k][x]
                    for x in (
                        "accuracy",
                        "accuracy_ci95",
                        "per_class",
                        "n_images",
                        "n_no_face",
                        "confusion_matrix",
                    )
                }
        print(json.dumps(brief, indent=2))
        print(
            f"wrote {m['model']}, {out}/metrics.json, {out}/history.png, {out}/tensorboard/", file=sys.stderr
        )
        return 0
    if args.command == "evaluate":
        from train.evaluate import dumps, evaluate_path
        from train.other_faces import evaluate_other, is_annotation_file

        if is_annotation_file(args.data):  # faces labelled per box (train/other_faces.json)
            if args.degrade:
                msg = "train evaluate: --degrade works on image data sets, not annotation files"
                print(msg, file=sys.stderr)
                return 2
            print(dumps(evaluate_other(args.model, args.data, args.detector, args.limit)))
            return 0

        report = args.report or args.model.with_name(args.model.stem + "-report")
        summary = evaluate_path(
            args.model,
            args.data,
            report,
            args.split,
            args.cache_dir,
            args.limit,
            progress=not args.quiet,
            detector=args.detector,
            degraded=args.degrade,
        )
        print(dumps(summary))
        return 0
    if args.command == "inspect":
        from train.inspect_model import inspect

        if not args.image.is_file():
            from train.data import DataError

            raise DataError(f"{args.image}: image not found")
        out = args.out or args.model.with_name(args.model.stem + "-inspect")
        print(json.dumps(inspect(args.model, args.image, out), indent=2))
        return 0
    if args.command == "card":
        from train.evaluate import faces_per_second
        from train.model_card import write_card

        metrics = json.loads(args.metrics.read_text())
        speed = faces_per_second(Path(metrics["model"])) if args.speed else None
        write_card(args.metrics, args.out, speed, args.train_command, args.compare, args.loso)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    if args.command == "loso":
        from train.loso import run_loso

        out = args.out or Path("runs") / f"loso-{args.config}"
        held = tuple(args.held_out.split(",")) if args.held_out else None
        res = run_loso(
            args.config, out, _shared(), tuple(args.sources.split(",")), held, args.baseline, args.seed
        )
        print((out / "loso.md").read_text())
        return 0 if res else 1
    if args.command == "variants":
        from train.variants import main as variants

        return variants(args, _shared())
    if args.command == "beard-finetune":
        from train.beard_finetune import main as beard_finetune

        return beard_finetune(args, _shared())
    if args.command == "finetune":
        from train.finetune import run

        folds = tuple(args.folds.split(","))
        cmd = "train " + " ".join(sys.argv[1:])
        run(
            folds,
            args.out,
            _shared(),
            args.blocks,
            args.lr,
            args.epochs,
            args.patience,
            args.seed,
            name=args.name,
            command=cmd,
            variants=not args.no_variants,
        )
        print((args.out / f"{args.name}.md").read_text())
        return 0
    if args.command == "real-men":
        from train.crops import default_cache_dir
        from train.real_men import REAL_MEN_CSV, evaluate_real_men

        srcs = tuple(x for x in args.sources.split(",") if x)
        res = evaluate_real_men(
            args.model, _shared(), default_cache_dir(), srcs, args.csv or REAL_MEN_CSV, args.labels
        )
        print(json.dumps(res, indent=2))
        return 0
    if args.command == "beard-loso":
        from train.beard_loso import main as beard_loso

        return beard_loso(args, _shared())
    if args.command == "speed":
        from train.evaluate import faces_per_second

        print(json.dumps(faces_per_second(args.model), indent=2))
        return 0
    raise AssertionError(args.command)
