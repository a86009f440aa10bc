"""Configuration: the shipped file is valid and documents every key; bad configs say what is wrong."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from streamer.config import Config, ConfigError, load_config
from tests.conftest import ROOT


def test_shipped_config_loads_and_points_at_the_models() -> None:
    c = load_config(ROOT / "config.toml", environ={})
    assert c.server.host == "127.0.0.1" and c.server.port == 8080
    assert [k.name for k in c.classifiers] == ["gender", "beard"]
    assert all(Path(k.model).parent == ROOT / "models" for k in c.classifiers)
    assert c.sources == [] and c.demo.enabled  # make run serves the demo video


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        sub = (
            ann
            if isinstance(ann, type) and issubclass(ann, BaseModel)
            else next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        )
        out += _keys(sub, prefix + name + ".") if sub else [prefix + name]
    return out


def test_shipped_config_mentions_every_key_with_a_comment() -> None:
    text = (ROOT / "config.toml").read_text()
    missing = []
    for key in _keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        # the key appears as an assignment (possibly commented out) with a comment on or above it
        if not re.search(rf"^#?\s*{leaf}\s*=", text, re.M):
            missing.append(key)
    assert missing == [], f"config.toml does not document: {missing}"


def test_environment_overrides_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[server]\nport = 9000\n[pipeline]\ndetector = "dlib"\n')
    c = load_config(p, environ={"STREAMER_SERVER_PORT": "9100", "STREAMER_PIPELINE_MAX_BATCH": "8"})
    assert (c.server.port, c.pipeline.max_batch) == (9100, 8)
    c = load_config(p, {"server": {"port": 9200}}, environ={"STREAMER_SERVER_PORT": "9100"})
    assert c.server.port == 9200  # flags beat the environment


def test_paths_are_relative_to_the_config_file_the_store_default_too(tmp_path: Path) -> None:
    """(before: with no [store] dir in the file, the history went to ./data wherever streamer ran)"""
    p = tmp_path / "etc" / "c.toml"
    p.parent.mkdir()
    p.write_text('[[classifiers]]\nname = "g"\nmodel = "m/g.keras"\n')
    c = load_config(p, environ={})
    assert (Path(c.store.dir), Path(c.classifiers[0].model)) == (
        p.parent / "data",
        p.parent / "m" / "g.keras",
    )
    p.write_text('[store]\nenabled = false\n[model_server]\nlog_file = "logs/triton.log"\n')
    c = load_config(p, environ={})
    assert (Path(c.store.dir), Path(c.model_server.log_file)) == (
        p.parent / "data",
        p.parent / "logs" / "triton.log",
    )
    assert Path(load_config(p, environ={"STREAMER_STORE_DIR": "/srv/x"}).store.dir) == Path("/srv/x")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nport = 70000\n", "server.port"),
        ('[pipeline]\ndetector = "yolo"\n', "pipeline.detector"),
        ("[pipeline]\nmax_batchh = 3\n", "max_batchh"),
        ('[[sources]]\nid = "a"\nurl = "rtsp://x"\nfile = "y.mp4"\n', "exactly one of url, device, file"),
        ('[[sources]]\nid = "a"\ndevice = 0\n[[sources]]\nid = "a"\ndevice = 1\n', "duplicate source id"),
        ("[server\nport = 1\n", "not valid TOML"),
    ],
)
def test_invalid_config_names_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(p, environ={})


def test_serve_with_invalid_config_exits_2_with_message(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[server]\nport = -1\n")
    r = subprocess.run(
        [sys.executable, "-m", "streamer", "serve", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "server.port" in r.stderr and "Traceback" not in r.stderr
