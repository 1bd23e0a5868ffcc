"""The documentation stays true to the code: every error code in the contract, every module in
the architecture's tree, every flag in docs/cli.md, every link resolving, and a README a
musician reads in five minutes."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import tcposcrouter
from tcposcrouter.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(tcposcrouter.__file__).parent
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_contract_names_every_error_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## 4. Error replies", 1)[1].split("\n## 5.", 1)[0]
    in_table = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    codes = {value for name, value in vars(ErrorCode).items() if name.isupper()}
    assert len(codes) >= 20
    assert in_table == codes


def tree_modules(text: str) -> set[str]:
    """The modules the architecture's tree lists: `name.py` lines, under their folder lines
    (two spaces of indent a level; a description's continuation lines are deeper still)."""
    block = text.split("```\nsrc/tcposcrouter/\n", 1)[1].split("```", 1)[0]
    found: set[str] = set()
    folders: list[str] = []  # the folder open at each level
    for line in block.splitlines():
        match = re.match(r"^( +)(\S+)", line)
        if match is None:
            continue
        level, name = len(match.group(1)) // 2 - 1, match.group(2)
        if level > len(folders) or not (name.endswith("/") or name.endswith(".py")):
            continue  # a description's second line
        del folders[level:]
        if name.endswith("/"):
            folders.append(name)
        else:
            found.add("".join(folders) + name)
    return found


def test_the_architecture_lists_every_module() -> None:
    listed = tree_modules((ROOT / "docs" / "architecture.md").read_text())
    actual = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    assert listed == actual


def test_the_tree_reader_would_notice_a_missing_module() -> None:
    text = (
        "```\nsrc/tcposcrouter/\n  errors.py\n  core/\n    hub.py\n    http/\n      door.py\n```\n"
    )
    assert tree_modules(text) == {"errors.py", "core/hub.py", "core/http/door.py"}


def test_the_cli_reference_is_made_from_the_parser() -> None:
    spec = importlib.util.spec_from_file_location("cli_doc", ROOT / "tools" / "cli_doc.py")
    assert spec is not None and spec.loader is not None
    cli_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli_doc)
    page = (ROOT / "docs" / "cli.md").read_text()
    assert cli_doc.current(page) == page, "run tools/cli_doc.py"
    for flag in ("--max-packet-size", "--no-osc10", "--cluster", "--log-format", "--tls-cert"):
        assert f"`{flag}" in page


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto: — outside the repository
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing = not linked.exists()
        if missing or (anchor and (linked.suffix != ".md" or anchor not in anchors(linked))):
            broken.append(target)
    assert broken == []


def test_the_link_check_would_notice() -> None:
    assert slug("8. The HTTP side (extension)") == "8-the-http-side-extension"
    assert slug("The `tcposcrouter` command") == "the-tcposcrouter-command"


@pytest.mark.parametrize(
    "package",
    sorted(path.parent for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE),
    ids=lambda path: path.relative_to(PACKAGE).as_posix(),
)
def test_every_package_maps_its_modules_in_its_docstring(package: Path) -> None:
    """A new maintainer opens a package's __init__ and finds each module in one line."""
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    mapped = set(re.findall(r"^ *(\w+\.py|\w+/)  ", docstring, re.MULTILINE))
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.parent.name}/" for p in package.glob("*/__init__.py")}
    assert mapped == modules
