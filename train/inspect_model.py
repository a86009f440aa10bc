"""``train inspect``: what a model sees. Writes the intermediate activation maps of one face
and a diagram of the model.

``keras.utils.plot_model`` needs pydot and the Graphviz ``dot`` program; where they are
missing (as on the project's machines) the diagram is drawn here instead: a text summary
(``model.txt``) and a PNG of the layer stack with output shapes (``model.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.classify import Classifier
from streamer.crop import whole_image_box
from train.crops import DEFAULT_DETECTOR, DEFAULT_UPSAMPLE, read_rgb

MAP_LAYERS = ("Conv2D", "SeparableConv2D", "MaxPooling2D", "Activation", "BatchNormalization", "Add")


def inspect(model_path: Path, image_path: Path, out: Path, max_channels: int = 16) -> dict[str, object]:
    import keras

    out.mkdir(parents=True, exist_ok=True)
    clf = Classifier("inspect", model_path)
    if clf.uses_backbone:
        from streamer.classify import ModelFileError

        raise ModelFileError(
            f"{model_path}: takes the face backbone's features ({clf.meta.features}), not pixels; "
            "inspect shows activation maps of pixel models only"
        )
    model = clf.model
    image = read_rgb(Path(image_path))
    from streamer.detect import make_detector

    detector = str(clf.meta.extra.get("detector", DEFAULT_DETECTOR))
    upsample = int(clf.meta.extra.get("upsample", DEFAULT_UPSAMPLE))  # type: ignore[arg-type]
    boxes = make_detector(detector).detect([image], upsample=upsample)[0]
    box = boxes[0] if boxes else whole_image_box(image)
    crop = clf.crops(image, [box])[0]
    probs = clf.predict_proba(crop[None])[0]

    layers = [ly for ly in model.layers if type(ly).__name__ in MAP_LAYERS and len(ly.output.shape) == 4]
    probe = keras.Model(model.inputs, [ly.output for ly in layers])
    acts = probe(crop[None].astype("float32"), training=False)
    acts = [np.asarray(a)[0] for a in (acts if isinstance(acts, list | tuple) else [acts])]
    maps_png = out / "activations.png"
    _plot_activations(crop, layers, acts, probs, clf.labels, maps_png, max_channels)
    txt, png = out / "model.txt", out / "model.png"
    diagram = _diagram(model, txt, png)
    return {
        "model": str(model_path),
        "image": str(image_path),
        "face_found": bool(boxes),
        "box": boxes[0].as_dict() if boxes else None,
        "probabilities": {lab: round(float(p), 4) for lab, p in zip(clf.labels, probs, strict=True)},
        "activations": str(maps_png),
        "diagram": diagram,
        "summary": str(txt),
    }


def _plot_activations(crop, layers, acts, probs, labels, path: Path, max_channels: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max_channels
    rows = len(acts) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.0), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(crop)
    verdict = ", ".join(f"{lab} {p:.2f}" for lab, p in zip(labels, probs, strict=True))
    axes[0, 1].text(0, 0.5, f"input crop; {verdict}", fontsize=8, va="center")
    for r, (ly, a) in enumerate(zip(layers, acts, strict=True), start=1):
        # The most active channels of this layer.
        order = np.argsort(-a.reshape(-1, a.shape[-1]).mean(axis=0))[:cols]
        for c, ch in enumerate(order):
            axes[r, c].imshow(a[:, :, ch], cmap="viridis")
        axes[r, 0].set_title(f"{ly.name} {a.shape[0]}x{a.shape[1]}x{a.shape[2]}", fontsize=6, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _diagram(model, txt: Path, png: Path) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **kw: lines.append(s), line_length=100)
    txt.write_text("\n".join(lines) + "\n")
    try:
        import keras

        keras.utils.plot_model(model, to_file=str(png), show_shapes=True)
        return f"{png} (keras.utils.plot_model)"
    except Exception:  # pydot or Graphviz missing: draw the layer stack ourselves
        pass
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for ly in model.layers:
        try:
            shape = tuple(ly.output.shape)[1:]
        except Exception:
            shape = ()
        inbound = _inbound(ly)
        rows.append((ly.name, type(ly).__name__, shape, ly.count_params(), inbound))
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7, 0.42 * n + 0.8))
    ax.set_xlim(0, 1)
    ax.set_ylim(-n, 1)
    ax.axis("off")
    for i, (name, kind, shape, params, inbound) in enumerate(rows):
        y = -i
        ax.add_patch(plt.Rectangle((0.05, y - 0.35), 0.9, 0.7, fc="#e8f0fe", ec="#335"))
        src = f"  ← {', '.join(inbound)}" if len(inbound) > 1 else ""
        ax.text(
            0.07,
            y,
            f"{name} ({kind})  out={shape}  params={params:,}{src}",
            va="center",
            fontsize=7,
            family="monospace",
        )
        if i < n - 1:
            ax.annotate(
                "", xy=(0.5, y - 0.62), xytext=(0.5, y - 0.36), arrowprops={"arrowstyle": "->", "lw": 0.8}
            )
    ax.set_title(
        f"{model.name}: {model.count_params():,} parameters (drawn by train.inspect_model)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return f"{png} (drawn without Graphviz: pydot/graphviz unavailable)"


def _inbound(layer) -> list[str]:
    names: list[str] = []
    for node in getattr(layer, "_inbound_nodes", []):
        for t in getattr(node, "input_tensors", []):
            hist = getattr(t, "_keras_history", None)
            if hist is not None:
                names.append(hist[0].name)
    return names
