"""``streamer people`` as the README shows it: photos enrolled into the library the config's [store]
names, photos with no face, several faces or no file skipped and said, the library listed, a face
and a person removed, and what is not there refused (issue #33)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED
from tests.support.cli import streamer_cli

MEDIA = SHARED / "media"


@pytest.mark.skipif(not (MEDIA / "two_people.jpg").exists(), reason="shared photos not found")
def test_people_add_list_and_remove_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\ndir = "library"\n')  # (beside the config file)
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    people = ["people", "--config", str(config)]
    obama, two = str(MEDIA / "obama-480p.jpg"), str(MEDIA / "two_people.jpg")
    (added,) = streamer_cli(  # (alone: it makes the database)
        [*people, "add", "Barack", obama, str(blank), two, str(tmp_path / "missing.jpg")]
    )
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(rf"{re.escape(obama)}: enrolled as Barack \(face (\d+), box [\d,]+\)\n", added.stdout)
    fid = re.search(r"face (\d+)", added.stdout).group(1)  # type: ignore[union-attr]
    for said in (
        f"{blank}: skipped: no face found in the photo",
        f"{two}: skipped: 2 faces in the photo: upload one with a single face",
        f"{tmp_path / 'missing.jpg'}: skipped: no such file or directory",
    ):
        assert said in added.stderr
    assert (tmp_path / "library" / "events.db").is_file()

    none, listed, wrong_face, wrong_person = streamer_cli(  # (at once, as beside a running service)
        [*people, "add", "Nobody", str(blank)],
        [*people, "list"],
        [*people, "remove", "Barack", "--face", str(int(fid) + 100)],
        [*people, "remove", "Michelle"],
    )
    assert none.returncode == 1 and "skipped: no face found" in none.stderr  # (nothing enrolled: exit 1)
    assert listed.stdout == f"Barack: 1 faces: {fid} (file)\n"
    assert wrong_face.returncode == 1
    assert f"no such person or face: face {int(fid) + 100} of Barack" in wrong_face.stderr
    assert wrong_person.returncode == 1 and "no such person or face: Michelle" in wrong_person.stderr

    (removed,) = streamer_cli([*people, "remove", "Barack", "--face", fid])
    assert removed.returncode == 0 and removed.stdout == "removed\n"
    (listed,) = streamer_cli([*people, "list"])
    assert listed.stdout == "Barack: 0 faces: -\n"  # (the person stays, without faces)
    (removed,) = streamer_cli([*people, "remove", "Barack"])
    assert removed.returncode == 0 and removed.stdout == "removed\n"
    (listed,) = streamer_cli([*people, "list"])
    assert listed.returncode == 0 and listed.stdout == ""
    assert "Traceback" not in added.stderr + none.stderr + wrong_face.stderr + wrong_person.stderr
