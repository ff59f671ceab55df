"""README.md against the code: every setting documented (and nothing stale), the quickstart's two commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from shadowgate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Lists of records, documented by their keys in one row, not as settings of their own.
RECORD_LISTS = {"tenants", "routes", "dashboard.users"}


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = prefix + name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and path not in RECORD_LISTS:
            yield from _fields(annotation, path + ".")
        else:
            yield path


def _documented() -> set[str]:
    """The setting names in the first column of the configuration table."""
    names: set[str] = set()
    for line in _section("Configuration").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_][a-z0-9_.]*)`", line.split("|")[1]))
    return names


def test_every_setting_is_documented() -> None:
    missing = sorted(set(_fields(Settings)) - _documented())
    assert not missing, f"README.md's configuration table lacks {missing}"


def test_every_documented_setting_exists() -> None:
    stale = sorted(_documented() - set(_fields(Settings)))
    assert not stale, f"README.md documents settings that do not exist: {stale}"


def test_quickstart_is_the_two_commands() -> None:
    quickstart = _section("Quickstart")
    block = re.search(r"```bash\n(.*?)```", quickstart, re.S)
    assert block is not None
    assert block.group(1).splitlines() == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_sections_the_other_parts_fill_exist() -> None:
    for title in ("Dashboard", "Cutover and rollback", "Operations", "Security", "Reliability", "Benchmarks"):
        assert _section(title).strip()
