"""The [people] section of the configuration: the face library, recognition, privacy (#33)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamer.people.learned import Learned
from streamer.people.match import MatchRule


class PeopleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="name faces from the face library (needs the store and a face-backbone classifier)"
    )
    known_distance: float = Field(
        0.4925,
        gt=0,
        le=2,
        description="a look whose nearest person lies this near (dlib distance, cohort-adjusted, plus the "
        "back-end's) is them, in a library of up to known_people people",
    )
    known_people: int = Field(
        20, ge=1, le=1_000_000, description="libraries of more people get a lower known_distance"
    )
    known_per_doubling: float = Field(
        0.018,
        ge=0,
        le=0.5,
        description="known_distance this much lower for every doubling of the library beyond known_people "
        "(more people, more chances for a stranger to lie near one)",
    )
    unknown_distance: float = Field(
        0.55, gt=0, le=2, description="a look whose nearest person lies further than this is unknown"
    )
    margin: float = Field(
        0.04, ge=0, le=1, description="the second nearest person must lie this much further (else uncertain)"
    )
    cohort: str = Field(
        "models/people_cohort.npz",
        description="background faces' descriptors that distances are adjusted by (empty: none)",
    )
    backend: str = Field(
        "models/people_plda.npz",
        description="learned back-end (PLDA) whose distance is added to every library distance (empty: none; "
        "a missing or bad file stops the service)",
    )
    cohort_k: int = Field(
        10, ge=1, le=1000, description="a face's nearest this many background faces say how crowded it lies"
    )
    min_face_px: int = Field(40, ge=0, le=4096, description="smaller faces (box height) are not recognised")
    streams: list[str] = Field(default_factory=list, description="streams that recognise (empty: all)")
    privacy: Literal["off", "blur_unknown", "blur_all"] = Field(
        "off",
        description="blur faces in every output (video, MJPEG, snapshots): all, or all but known people",
    )
    cluster_distance: float = Field(
        0.40,
        gt=0,
        le=2,
        description="an unknown track this near a cluster's tracks (on average, and half of them) joins it "
        "(else a new one)",
    )
    cluster_min_looks: int = Field(
        2, ge=1, le=100, description="unknown tracks with fewer descriptors are not grouped"
    )
    cluster_min_face_px: int = Field(
        0,
        ge=0,
        le=4096,
        description="unknown tracks whose faces are smaller (median box height) are not grouped",
    )
    cluster_min_frontal: float = Field(
        0.5,
        ge=0,
        le=1,
        description="only looks at least this frontal (0 profile, 1 facing the camera) count for the "
        "clusters: a track with fewer than cluster_min_looks of them is not grouped",
    )
    learn_distance: float = Field(
        0.45,
        ge=0,
        le=2,
        description="a named track's looks this near its person (the library's distance) are learned as "
        "one more face of theirs, in memory, for the stream's later tracks (0: learn nothing)",
    )
    learn_keep: int = Field(8, ge=1, le=1000, description="learned faces kept per person and stream (newest)")
    refresh_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="how often the library and the clusters are read again for changes made elsewhere "
        "(streamer people, other front ends)",
    )
    max_upload_mb: float = Field(10.0, gt=0, le=200, description="largest photo upload")
    max_upload_pixels: int = Field(40_000_000, ge=10_000, description="largest photo (width x height)")

    def learned(self, on_learn: Callable[[], None] | None = None) -> Learned | None:
        """A stream's learned faces (learned.py; ``on_learn`` called for each face learned), or None
        when ``learn_distance`` is 0."""
        if self.learn_distance <= 0:
            return None
        return Learned(
            self.learn_distance, self.learn_keep, min_frontal=self.cluster_min_frontal, on_learn=on_learn
        )

    def match_rule(self) -> MatchRule:
        """The library's rule (match.py) from these settings."""
        k, u = self.known_distance, self.unknown_distance
        return MatchRule(k, u, self.margin, self.known_per_doubling, self.known_people)

    @model_validator(mode="after")
    def _order(self) -> PeopleConfig:
        if self.unknown_distance < self.known_distance:
            raise ValueError("people.unknown_distance must be at least people.known_distance")
        return self
