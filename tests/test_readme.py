"""Every snippet of the README and of docs/ works: Python blocks run, command lines parse.

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

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(language: str, document: Path = README) -> list[str]:
    return [body for lang, body in BLOCK.findall(document.read_text()) if lang == language]


def command_lines(documents: list[Path] | None = None) -> list[str]:
    lines = []
    bodies = [b for d in documents or [README] for b in blocks("bash", d)]
    for body in bodies:
        for line in body.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("csnln "):
                lines.append(line)
    return lines


def test_the_readme_has_snippets() -> None:
    assert len(blocks("python")) >= 2 and len(command_lines()) >= 10


@pytest.mark.parametrize("line", command_lines([README, *DOCS]))
def test_command_lines_parse(line: str) -> None:
    args = shlex.split(line)[1:]
    parsed = build_parser().parse_args(args)  # exits (fails the test) on a bad option
    assert parsed.command is not None


@pytest.mark.parametrize(
    "document", [README, *(d for d in DOCS if blocks("python", d))], ids=lambda d: d.name
)
def test_python_snippets_run(
    document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Image.open(SAMPLE).convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    (tmp_path / "set5").mkdir()  # the README's evaluation example: one Set5 image
    Image.open(SAMPLE).save(tmp_path / "set5" / "butterfly.png")
    from conftest import stub_torchvision

    stub_torchvision()  # spandrel's import needs two torchvision names (see conftest)
    namespace: dict[str, object] = {}
    for body in blocks("python", document):
        exec(compile(body, str(document), "exec"), namespace)  # noqa: S102


def test_models_listing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    assert "small" in capsys.readouterr().out


def test_the_layout_table_lists_every_module() -> None:
    """Each source file of the package is named in the README's layout table."""
    text = README.read_text()
    table = text[text.index("## Layout") : text.index("## Use it elsewhere")]
    package = ROOT / "src" / "csnln"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and f"`{path.name}`" not in table
    ]
    assert not missing, f"the README's layout table does not list {missing}"
