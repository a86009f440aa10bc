"""Evaluation report files: confusion-matrix PNG, text classification report, grid of
misclassified faces, and the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NO_FACE_TAG = "\tno_face"


def classification_report(summary: dict[str, object]) -> str:
    labels = list(summary["labels"])  # type: ignore[call-overload]
    pc = summary["per_class"]
    width = max(12, *(len(lab) for lab in labels))
    lines = [
        f"model: {summary['model']}",
        f"data:  {summary['data']}",
        f"images: {summary['n_images']}   no face detected (classified whole): {summary['n_no_face']}",
        "",
        f"{'':{width}}  precision  recall  f1      support",
    ]
    for lab in labels:
        c = pc[lab]  # type: ignore[index]
        lines.append(
            f"{lab:{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}"
        )
    lo, hi = summary["accuracy_ci95"]  # type: ignore[misc]
    lines += [
        "",
        f"accuracy: {summary['accuracy']:.4f}  (95% Wilson CI {lo:.4f}-{hi:.4f}, n={summary['n_images']})",
        "",
        "confusion matrix (rows: true, columns: predicted)",
        f"{'':{width}}  " + "  ".join(f"{lab:>{width}}" for lab in labels),
    ]
    for lab, row in zip(labels, summary["confusion_matrix"], strict=True):  # type: ignore[arg-type]
        lines.append(f"{lab:{width}}  " + "  ".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    summary: dict[str, object],
    crops: np.ndarray,
    ds,
    pred: np.ndarray,
    probs: np.ndarray,
    no_face: np.ndarray,
    max_wrong: int = 48,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    labels = list(summary["labels"])  # type: ignore[call-overload]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "classification_report.txt").write_text(classification_report(summary))

    cm = np.asarray(summary["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4 + 0.6 * len(labels), 3.5 + 0.6 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            dark = cm[i, j] > cm.max() / 2
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {summary['accuracy']:.4f} (n={summary['n_images']})")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    wrong = np.flatnonzero(pred != ds.y)
    # Most confident mistakes first: the most informative ones.
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:max_wrong]
    (out / "misclassified.txt").write_text(
        "".join(
            f"{ds.paths[i]}\ttrue={labels[ds.y[i]]}\tpred={labels[pred[i]]}\tp={probs[i, pred[i]]:.3f}"
            f"{NO_FACE_TAG if no_face[i] else ''}\n"
            for i in np.flatnonzero(pred != ds.y)
        )
    )
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.85), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(crops[i])
        tag = " (no face)" if no_face[i] else ""
        ax.set_title(
            f"{Path(ds.paths[i]).name}\n{labels[ds.y[i]]}→{labels[pred[i]]} {probs[i, pred[i]]:.2f}{tag}",
            fontsize=6,
        )
    if len(wrong) == 0:
        axes[0, 0].text(0, 0.5, "no misclassified images", fontsize=9)
    fig.suptitle(
        f"misclassified (true→predicted, probability): {int((pred != ds.y).sum())} in all", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(out / "misclassified.png", dpi=100)
    plt.close(fig)
