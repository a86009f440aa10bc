"""Model cards (Markdown) written from a training run's ``metrics.json``, so every figure
in a card is a measured one and the card can be regenerated with the model."""

from __future__ import annotations

import json
from pathlib import Path

from streamer.classify.face_resnet import needs_mirror
from train.beard_tried import BEARD_LOOKS, BEARD_TRIED

GOALS = {"gender": 0.985, "beard": 0.94}  # issue #11
REAL_MEN_GOAL = (0.92, 0.88)  # issue #30: real men never trained on, overall and each class

INTENDED = {
    "gender": (
        "Labelling the apparent gender presentation (female / male, as annotated in CelebA) of "
        "faces found by the service's detector, for aggregate, non-commercial research analytics. "
        "Not for decisions about individuals, identity verification, or inferring gender identity."
    ),
    "beard": (
        "Labelling whether a detected face is clean-shaven or shows facial hair (beard, goatee, "
        "moustache or stubble), for aggregate, non-commercial research analytics."
    ),
}


def pc(x: float | None) -> str:
    """A share as a percentage with one decimal ("–" for none)."""
    return "–" if x is None else f"{100 * x:.1f}%"


def score_cell(c: dict) -> str:
    """An accuracy cell of a card or a results table: the share, its 95% interval and n ("–" when
    nothing was scored)."""
    if not c["n"]:
        return "–"
    return f"{pc(c['accuracy'])} ({pc(c['ci95'][0])}–{pc(c['ci95'][1])}), n={c['n']}"


def _eval_table(name: str, s: dict) -> list[str]:
    lo, hi = s["accuracy_ci95"]
    if "n_faces" in s:  # faces labelled per box (train/other_faces.py)
        what = (
            f"{s['n_faces']} faces in {s['n_images']} images and video frames; "
            f"{s['n_missed']} labelled faces missed by the detector"
        )
    else:
        what = f"{s['n_images']} images, {s['n_no_face']} with no detected face, classified whole"
    lines = [
        f"**{name}** ({what}): accuracy **{pc(s['accuracy'])}** (95% Wilson CI {pc(lo)}–{pc(hi)}).",
        "",
        "| class | precision | recall (95% CI) | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for lab, c in s["per_class"].items():
        rl, rh = c["recall_ci95"]
        lines.append(
            f"| {lab} | {pc(c['precision'])} | {pc(c['recall'])} ({pc(rl)}–{pc(rh)}) | "
            f"{c['f1']:.3f} | {c['support']} |"
        )
    labels = s["labels"]
    lines += ["", "Confusion matrix (rows true, columns predicted):", ""]
    lines.append("| true \\ predicted | " + " | ".join(labels) + " |")
    lines.append("|---" * (len(labels) + 1) + "|")
    for lab, row in zip(labels, s["confusion_matrix"], strict=True):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    return [*lines, ""]


# how the later half of train/real_men_beard.csv was chosen (the CSV does not say)
ADDED_MEN = (
    "Of these, 470 (UTKFace 320, LFW 75, All-Age-Faces 75; 245 shaved, 175 unshaved, 50 unsure) were "
    "added for issue #30, drawn at random among each source's men rather than by a head's score."
)


def _csv_counts(counts: dict | None) -> list[str]:
    if not counts:
        return []
    n = sum(sum(c.values()) for c in counts.values())
    each = "; ".join(
        f"{src} {c['shaved']} shaved / {c['unshaved']} unshaved / {c['unsure']} unsure"
        for src, c in counts.items()
    )
    return [
        f"The real men's CSV labels {n} men: {each}. {ADDED_MEN} Every source held out in turn: "
        "`train beard-loso` ([beard-loso-cpu-2core.md](../benchmarks/results/beard-loso-cpu-2core.md)).",
        "",
    ]


def _real_men_section(r: dict) -> list[str]:
    """The model on real men labelled by looking (train/real_men.py), never trained on."""
    t = r.get("trained")
    if "overall" not in r:
        return [
            f"Real men: all {t['n_train'] + t['n_val']} labelled men were trained on; none left to judge.",
            "",
        ]
    trained = (
        f"trained on the labelled men of {', '.join(t['train_sources'])} (person-disjoint "
        f"{t['n_train']} training / {t['n_val']} validation), judged on those of "
        f"{', '.join(r['sources'])}, never trained on"
        if t
        else "none of them trained on"
    )
    lines = [
        *_csv_counts(r.get("csv_counts")),
        f"**Real men** (`train/{r['data']}`: LFW, one image a person; UTKFace; All-Age-Faces; men "
        f"sampled across sources, ages and ethnic groups and labelled shaved/unshaved by looking with "
        "CelebA's rule (any beard, goatee, moustache or visible stubble is unshaved; borderline faces "
        f"looked at again enlarged), `unsure` left out; {trained}; "
        "`train real-men --model ...`): accuracy, 95% Wilson CI:",
        "",
        "| faces | accuracy (95% CI), n |",
        "|---|---|",
        f"| all | **{score_cell(r['overall'])}** |",
        *(f"| {k} | {score_cell(c)} |" for k, c in r["per_class"].items()),
        *(f"| source {k} | {score_cell(c)} |" for k, c in r["per_source"].items()),
        *(f"| age {k} | {score_cell(c)} |" for k, c in r["per_age"].items()),
        "",
    ]
    (o, cls), b = REAL_MEN_GOAL, r["beard2clean"]
    ok = r["overall"]["accuracy"] >= o and all(c["accuracy"] >= cls for c in r["per_class"].values())
    lines += [
        f"Goal (issue #30): ≥ {pc(o)} overall and ≥ {pc(cls)} for each class on real men never trained "
        f"on: {'met' if ok else '**not met**'}.",
        "",
        f"beard2clean (synthetic pairs, one man with and without a beard): the cut-off falls between the "
        f"twins in {b['flips']} of {b['pairs']} pairs; the bearded twin scores higher in {b['ordered']}.",
        "",
    ]
    return lines


def _degraded_mean(m: dict) -> str:
    d = m.get("test_degraded")
    return pc(sum(v["accuracy"] for v in d.values()) / len(d)) if d else "–"


def _degraded_table(d: dict, clean: float | None) -> list[str]:
    """Accuracy on the test split with every image degraded as video would (``train/degrade.py``),
    the boxes being the clean image's: how the head holds up on blurred, dark, compressed faces."""
    lines = [
        "**Held-out test split, degraded as video would** (`train evaluate --split test --degrade KIND`; "
        "the face boxes are the clean image's; `motion` is not in the training mix of the `_video` "
        "configs):",
        "",
        "| degradation | accuracy (95% CI) | vs clean |",
        "|---|---|---|",
    ]
    for kind, s in d.items():
        lo, hi = s["accuracy_ci95"]
        delta = f"{100 * (s['accuracy'] - clean):+.1f} points" if clean is not None else "–"
        lines.append(f"| {kind} | {pc(s['accuracy'])} ({pc(lo)}–{pc(hi)}) | {delta} |")
    return [*lines, ""]


# what each source's faces may be used for (../shared/README.md)
SOURCE_LICENCE = {
    "utkface": "UTKFace (**non-commercial research use only**)",
    "lfw": "LFW (research use)",
    "aaf": 'All-Age-Faces (research use; cite Cheng et al., "Exploring the All-Age-Faces dataset")',
}


def _licence(trained: dict | None) -> str:
    """The licence line: CelebA's terms, and those of the sources of any real men trained on."""
    if not trained:
        return "Trained on CelebA: **non-commercial research use only** (CelebA's terms). The code is MIT."
    others = ", ".join(SOURCE_LICENCE.get(s, s) for s in trained["train_sources"])
    return (
        f"Trained on CelebA (**non-commercial research use only**) and men of {others}: the model is for "
        "**non-commercial research use only**. dlib's model files are public domain; the code is MIT."
    )


def write_card(
    metrics_path: Path,
    out: Path,
    speed: dict[str, float] | None = None,
    command: str | None = None,
    compare: list[Path] | None = None,
    loso: list[Path] | None = None,
) -> str:
    m = json.loads(Path(metrics_path).read_text())
    task = m["task"]
    sp = m["split"]
    cc = m["class_counts"]
    title = {"gender": "Gender classifier", "beard": "Shaved / unshaved classifier"}.get(task, task)
    features = m.get("features", "pixels")
    if features == "pixels":
        arch = (
            f"- Architecture: `{m['config']}` ({m['params']:,} parameters, "
            f"{m['model_bytes'] / 1e6:.1f} MB file). "
            "Input: 64x64 RGB face crop, float32 in [0, 255]; scaling is inside the model."
        )
        crops = (
            f"- Crops: the service's detector (`{m['detector']}`, upsample={m['upsample']}) and "
            "`streamer.crop.crop_face` (margin 0.25, square, resized) — the same code path as live."
        )
    else:
        arch = (
            f"- Architecture: `{m['config']}`: a head of {m['params']:,} parameters "
            f"({m['model_bytes'] / 1e6:.2f} MB file) on the features `{features}` of dlib's "
            "face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`, frozen, ported to "
            "Keras in `streamer/classify/face_resnet.py`; 99.38% on LFW). The service computes the "
            "backbone once per face and feeds every head that takes its features."
        )
        crops = (
            f"- Faces: the service's detector (`{m['detector']}`, upsample={m['upsample']}), then dlib's "
            "5-point landmarks and face chip (150x150, padding 0.25) — `FaceBackbone`, the same code "
            "path as live."
        )
    lines = [
        f"# {title} (`{Path(m['model']).name}`)",
        "",
        f"- Task: `{task}`; labels {', '.join(f'`{x}`' for x in m['labels'])}; rule: {m['label_rule']}.",
        arch,
        crops,
        f"- Faces not found: {m['n_no_face']} of {m['n_images']} images had no detected face; "
        f"{m['n_no_face_train_val']} of them fell in training/validation and were "
        + (
            "left out of the training set (those in validation are classified whole there); "
            if m["no_face_policy"] == "skip"
            else "trained on whole; "
        )
        + "in evaluation such images are classified whole and counted (`n_no_face`).",
        "",
        "## Data and split",
        "",
        f"- Data: {m['data'].split(':', 1)[-1]} — a 9,000-image slice of CelebA (Liu et al., ICCV 2015), "
        "89x109 aligned crops.",
        f"- Test: {sp['test']} — {sp['n_test']} images, never used for training or early stopping.",
        f"- The rest shuffled with seed {sp['seed']}, split "
        f"{1 - sp['val_fraction']:.0%} / {sp['val_fraction']:.0%} "
        f"into training ({sp['n_train']}) and validation ({sp['n_val']}, early stopping) (faces found only).",
        *(
            ["- Men only: CelebA's `Male` images (the service runs this head only on men)."]
            if m.get("men_only")
            else []
        ),
        f"- Class counts: train {cc['train']}, validation {cc['val']}, test {cc['test']}.",
        *(
            [
                f"- Also trained on {t['n_train']} real men of {', '.join(t['train_sources'])} labelled by "
                f"looking (`{'`, `'.join('train/' + c for c in t['csv'].split('+'))}`; "
                f"{t['n_val']} more, other people, in validation), weighing "
                f"{t['weight']:g} of the CelebA faces' total."
            ]
            if (t := m.get("real_men", {}).get("trained"))
            else []
        ),
        "",
        "## Training",
        "",
        f"- Adam, learning rate {m['learning_rate']}, batch {m['batch_size']}, up to {m['epochs']} epochs, "
        f"early stopping on validation loss; ran {m['epochs_run']} epochs, best epoch {m['best_epoch']} "
        "(weights restored).",
        "- Time on the 2-core development CPU (shared): "
        + (
            f"crops {m['seconds_crops']} s (from the box cache), "
            if features == "pixels"
            else f"backbone features {m['seconds_crops']} s (0 when cached), "
        )
        + f"fit {m['seconds_fit']} s.",
        "",
        "## Measured results",
        "",
    ]
    if "test" in m:
        lines += _eval_table("Held-out test split", m["test"])
    if "val" in m:
        lines += _eval_table("Validation split (used for early stopping)", m["val"])
    if "test_degraded" in m:
        lines += _degraded_table(m["test_degraded"], m["test"]["accuracy"] if "test" in m else None)
    if "other" in m:
        lines += [
            "Faces from sources other than CelebA (`train/other_faces.json`: dlib's example photos, "
            "`../shared/media`, frames of the demo clip; labelled by eye per face box), through the "
            f"service's Engine (detector `{m['other']['detector']}`, upsample {m['other']['upsample']}):",
            "",
            *_eval_table("Faces from other sources", m["other"]),
        ]
        errs = m["other"].get("errors", [])
        if errs:
            lines += [
                "Wrong on: "
                + "; ".join(f"{e['image']} {e['true']} called {e['predicted']} ({e['p']:.2f})" for e in errs)
                + ".",
                "",
            ]
    if "real_men" in m:
        lines += _real_men_section(m["real_men"])
    if loso:  # the recipe judged leave-one-source-out (train beard-loso results, one a seed)
        from train.beard_loso_card import loso_section

        lines += loso_section(loso, m["config"], m["real_men"]["trained"]["weight"])
    goal = GOALS.get(task)
    if goal and "test" in m:
        acc = m["test"]["accuracy"]
        verdict = "meets" if acc >= goal else "does **not** meet"
        men = (
            " (CelebA's men only: the harder half; women are nearly all shaved)" if m.get("men_only") else ""
        )
        lines += [f"Goal: ≥ {pc(goal)} on held-out faces. Test accuracy {pc(acc)}{men} {verdict} it.", ""]
    if task == "beard":
        lines += BEARD_LOOKS + BEARD_TRIED
    if compare:
        lines += [
            "## Architectures compared (same data, split and seed)",
            "",
            "| config | params | epochs run | fit s | val acc | test acc (95% CI) | test degraded (mean) |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in compare:
            c = json.loads(Path(p).read_text())
            t = c.get("test", {})
            ci = t.get("accuracy_ci95", [0, 0])
            lines.append(
                f"| `{c['config']}` | {c['params']:,} | {c['epochs_run']} | {c['seconds_fit']} | "
                f"{pc(c['val']['accuracy'])} | {pc(t.get('accuracy', 0))} ({pc(ci[0])}–{pc(ci[1])}) | "
                f"{_degraded_mean(c)} |"
            )
        lines.append("")
    if speed:
        lines += [
            "## Speed",
            "",
            "`Classifier.predict_proba` (and, for a head on the backbone, `FaceBackbone.features`: "
            + (
                "two passes per face, the chip and its mirror image, for the test-time-flip features; "
                if needs_mirror(features)
                else "one pass per face, "
            )
            + "shared by all heads; its default runtime, ONNX Runtime on a CPU) on the 2-core "
            "development CPU (shared with other jobs): "
            + ", ".join(
                f"{k.replace('_', ' ')}: {v} faces/s ({1000 / v:.2f} ms/face)" for k, v in speed.items()
            )
            + ".",
            "",
        ]
    lines += [
        "## Intended use",
        "",
        INTENDED.get(task, ""),
        "",
        "## Limits",
        "",
        "- Trained on 9,000 CelebA celebrity photos"
        + (" and the real men above" if m.get("real_men", {}).get("trained") else "")
        + ": mostly frontal, well-lit, young-adult, "
        "light-skinned faces. Expect lower accuracy on profile views, low light, motion blur, "
        "small or low-resolution faces from video, children, older people and under-represented groups.",
        "- CelebA's attribute labels are crowd-annotated and noisy "
        "(inspect `misclassified.png` in the report).",
        "- Binary labels only; no notion of uncertainty beyond the probability (the service's "
        "threshold marks low-confidence results `?`).",
        "",
        "## Licence",
        "",
        _licence(m.get("real_men", {}).get("trained")),
        "",
        "## Reproduce",
        "",
        "```",
        command or f"train {task} --config {m['config']} --epochs {m['epochs']} --seed {m['seed']}",
        f"train evaluate --model {m['model']} --data ../shared/data/celeba --split test",
        "```",
        "",
    ]
    text = "\n".join(lines)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text
