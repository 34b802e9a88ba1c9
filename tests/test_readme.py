"""Every snippet of the README works: Python blocks run, command lines parse.

Python blocks run in order in one namespace, in a temporary folder holding ``photo.jpg``
(the bundled sample), as a new user would run them. Each ``csnln ...`` line of a bash block
is parsed by the real command-line parser (every option exists and takes its value); the
quick ones (``--help``, ``models``) are run too. Lines that install or need data the tests do
not have (``pip``, ``torchrun``, paths under ``../shared``) are only parsed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from csnln.cli import build_parser, main
from csnln.demo import SAMPLE

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def command_lines() -> list[str]:
    lines = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("csnln "):
                lines.append(line)
    return lines


def test_the_readme_has_snippets() -> None:
    assert len(blocks("python")) >= 2 and len(command_lines()) >= 10


@pytest.mark.parametrize("line", command_lines())
def test_command_lines_parse(line: str) -> None:
    args = shlex.split(line)[1:]
    parsed = build_parser().parse_args(args)  # exits (fails the test) on a bad option
    assert parsed.command is not None


def test_python_snippets_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.open(SAMPLE).convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    (tmp_path / "set5").mkdir()  # the README's evaluation example: one Set5 image
    Image.open(SAMPLE).save(tmp_path / "set5" / "butterfly.png")
    from conftest import stub_torchvision

    stub_torchvision()  # spandrel's import needs two torchvision names (see conftest)
    namespace: dict[str, object] = {}
    for body in blocks("python"):
        exec(compile(body, str(README), "exec"), namespace)  # noqa: S102


def test_models_listing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    assert "small" in capsys.readouterr().out
