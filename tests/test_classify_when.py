"""Classifiers on a condition (``when = "gender:male"``): a conditional classifier is neither run
on, nor shown for, a face whose condition fails (streamer/classify/conditions.py, the Engine,
the track's labels, the caption)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.config import ClassifierConfig
from streamer.types import Box, Face, Label


def _model(path: Path, labels: tuple[str, str], kernel: np.ndarray, bias: np.ndarray, task: str) -> Path:
    """A pixel model with fixed weights: logits = mean RGB (0..1) @ kernel + bias."""
    import keras

    from streamer.classify import ModelMeta, save_model

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inp, dense(x))
    dense.set_weights([kernel.astype("float32"), bias.astype("float32")])
    save_model(model, path, ModelMeta(labels=labels, input_size=(16, 16), crop_margin=0.0, task=task))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("when")
    # "gender": male on a bright face (mean > 0.5), female on a dark one, p ~ 1 either way
    gender = _model(
        d / "g.keras", ("female", "male"), np.tile([[-20.0, 20.0]], (3, 1)), np.array([30.0, -30.0]), "gender"
    )
    # "beard": always "shaved" at p = 0.88
    beard = _model(d / "b.keras", ("shaved", "unshaved"), np.zeros((3, 2)), np.array([2.0, 0.0]), "beard")
    return gender, beard


def _engine(models: tuple[Path, Path], when: str = "gender:male", order: str = "gb"):
    from streamer.inference.engine import Engine, EngineSpec

    g = ClassifierConfig(name="gender", model=str(models[0]), threshold=0.6)
    b = ClassifierConfig(name="beard", model=str(models[1]), threshold=0.6, when=when)
    return Engine(EngineSpec(detector="mmod", classifiers=(g, b) if order == "gb" else (b, g)))


def test_conditional_classifier_runs_only_where_the_condition_holds(models) -> None:
    engine = _engine(models)
    assert engine.conditions == {"beard": ("gender", "male")}
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 230  # a dark face (female) on the left, a bright one (male) on the right
    boxes = [[Box(10, 10, 80, 80, 1.0), Box(110, 10, 180, 80, 1.0)]]
    labels, batches, errors, _ = engine.classify([image], boxes)
    assert not errors
    woman, man = labels[0]
    assert [lab.label for lab in woman] == ["female"]  # no beard label: not run, not shown
    assert [(lab.classifier, lab.label) for lab in man] == [("gender", "male"), ("beard", "shaved")]
    assert batches == {"gender": 2, "beard": 1}  # the beard head saw the man's face only
    # only women in the batch: the beard head is not called at all
    labels, batches, _, _ = engine.classify([image[:, :100]], [[Box(10, 10, 80, 80, 1.0)]])
    assert "beard" not in batches and [lab.label for lab in labels[0][0]] == ["female"]


def test_a_condition_that_cannot_be_met_disables_the_classifier(models) -> None:
    for when, order, why in (
        ("age:old", "gb", "no classifier 'age'"),
        ("gender:male", "bg", "no classifier 'gender'"),  # listed after it: it would not have run yet
        ("gender:cat", "gb", "gives only"),
    ):
        engine = _engine(models, when, order)
        assert engine.status.classifiers == ["gender"], when
        assert why in engine.status.failed["beard"], when
    with pytest.raises(ValueError):
        ClassifierConfig(name="beard", model="m.keras", when="gender")  # not 'classifier:label'


def test_a_track_shows_a_conditional_label_only_while_its_condition_holds() -> None:
    from streamer.classify.conditions import gate
    from streamer.overlay import face_caption
    from streamer.track.evidence import EvidenceRule
    from streamer.track.rule import TrackerRule
    from streamer.track.track import Track

    rule = TrackerRule(conditions=(("beard", "gender", "male"),), evidence=EvidenceRule(min_looks=1))
    tr = Track(1, Face(Box(0, 0, 99, 99, 1.0), ()), 0, 0.0, rule)
    male = [Label("gender", "male", 0.7), Label("beard", "shaved", 0.9)]
    tr.look(male, 100, 1.0)  # looks that called the face male gave it beard evidence ...
    assert [lab.label for lab in tr.labels()] == ["male", "shaved"]
    for _ in range(8):  # ... then the track settles on female: "shaved" goes with "male"
        tr.look([Label("gender", "female", 0.99)], 100, 1.0)
    assert [lab.label for lab in tr.labels()] == ["female"]
    assert "shaved" not in face_caption(tr.face()) and "beard" not in face_caption(tr.face())
    # a beard still "?" on a woman's track does not keep her face being classified
    tr.classified_height, tr.detections_since_classified = 100.0, 0
    tr.evidence["beard"].shown = "?"
    assert not tr.needs_classifying()
    # a "?" for the condition meets no condition
    assert gate(
        [Label("gender", "?", 0.0), Label("beard", "shaved", 0.9)], {"beard": ("gender", "male")}
    ) == (Label("gender", "?", 0.0),)


def test_config_carries_when_to_the_tracker_rule() -> None:
    from streamer.config import PipelineConfig
    from streamer.pipeline.tracking import rule_for

    cs = [
        ClassifierConfig(name="gender", model="g.keras"),
        ClassifierConfig(name="beard", model="b.keras", when="gender:male"),
    ]
    assert rule_for(PipelineConfig(), cs).conditions == (("beard", "gender", "male"),)
    assert rule_for(PipelineConfig()).conditions == ()
