"""Classifiers that run on a condition (``when = "gender:male"`` in a ``[[classifiers]]``
entry): a classifier whose condition names another classifier's label is run only on the
faces that other classifier gave that label (as DeepStream's secondary classifiers run on
chosen classes), and a track shows its label only while the track's own label for the
condition is that label. So a woman's caption never says "shaved 0.9": neither computed nor
shown, and a track that settles on "female" after a few looks called it "male" drops it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamer.classify import UNCERTAIN
from streamer.types import Label

# classifier name -> (the classifier it depends on, the label that one must give)
Conditions = Mapping[str, tuple[str, str]]


def parse_when(when: str) -> tuple[str, str]:
    name, _, label = when.partition(":")
    if not name or not label:
        raise ValueError(f"when = {when!r}: expected 'classifier:label', e.g. 'gender:male'")
    return name, label


def conditions_of(classifiers: Sequence[object]) -> dict[str, tuple[str, str]]:
    """``{name: (classifier, label)}`` of the configured classifiers that have a ``when``."""
    return {c.name: parse_when(c.when) for c in classifiers if getattr(c, "when", None)}  # type: ignore[attr-defined]


def check_conditions(classifiers: Sequence[object]) -> dict[str, str]:
    """Problems with the conditions, by classifier name: a condition must name a classifier
    listed before this one (it runs first), not itself, with a label that one can give."""
    problems: dict[str, str] = {}
    seen: dict[str, object] = {}
    for c in classifiers:
        name = c.name  # type: ignore[attr-defined]
        when = getattr(c, "when", None)
        if when:
            dep, label = parse_when(when)
            other = seen.get(dep)
            if other is None:
                problems[name] = f"when = {when!r}: no classifier {dep!r} listed (and loaded) before it"
            else:
                labels = getattr(other, "labels", None)
                if labels and label not in labels:
                    problems[name] = f"when = {when!r}: {dep!r} gives only {list(labels)}"
        seen[name] = c
    return problems


def usable_conditions(
    configs: Sequence[object], classifiers: Sequence[object]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """(conditions of the loaded classifiers, problems by name) for the configured classifiers
    (``classifiers``: those whose model loaded, with their ``name`` and ``labels``)."""
    from types import SimpleNamespace

    loaded = {c.name: c.labels for c in classifiers}  # type: ignore[attr-defined]
    listed = [
        SimpleNamespace(name=c.name, when=getattr(c, "when", None), labels=tuple(loaded[c.name]))  # type: ignore[attr-defined]
        for c in configs
        if c.name in loaded  # type: ignore[attr-defined]
    ]
    bad = check_conditions(listed)
    return {k: v for k, v in conditions_of(listed).items() if k not in bad}, bad


def met(condition: tuple[str, str], labels: Sequence[Label]) -> bool:
    """Whether ``labels`` (one face's, or one track's) meet ``condition``: the named classifier
    gave the named label (a '?' meets no condition)."""
    dep, want = condition
    return any(lab.classifier == dep and lab.label == want and lab.label != UNCERTAIN for lab in labels)


def gate(labels: Sequence[Label], conditions: Conditions) -> tuple[Label, ...]:
    """``labels`` without those of classifiers whose condition the others do not meet."""
    if not conditions:
        return tuple(labels)
    return tuple(
        lab for lab in labels if lab.classifier not in conditions or met(conditions[lab.classifier], labels)
    )
