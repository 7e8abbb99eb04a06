"""README.md: its configuration tables cover every setting and stage field in the code.

Regenerate the tables between the ``<!-- table:NAME -->`` markers of the README with
``.venv/bin/python tests/test_readme.py --write``; without ``--write`` it prints them.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# (marker name, module, dataclass) of each stage config.
STAGE_CONFIGS = (
    ("synthesize", "policy_trainer.synthesis.config", "SynthesizeConfig"),
    ("sft", "policy_trainer.sft", "SFTStageConfig"),
    ("mine", "policy_trainer.mining.config", "MineConfig"),
    ("grpo", "policy_trainer.grpo", "GRPOStageConfig"),
    ("evaluate", "policy_trainer.evaluate", "EvaluateConfig"),
)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if value is None or value == "":
        return "empty"
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def settings_table(settings_cls: type, prefix: str) -> str:
    """Markdown rows of a pydantic-settings class, nested models flattened with __."""
    from pydantic import BaseModel

    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in settings_cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"| `{prefix}{name.upper()}` | | {_cell(info.description)} As JSON, "
                         f"or one variable per field: |")
            for sub_name, sub in annotation.model_fields.items():
                lines.append(f"| `{prefix}{name.upper()}__{sub_name.upper()}` | "
                             f"{_default(sub.get_default(call_default_factory=True))} | "
                             f"{_cell(sub.description)} |")
            continue
        default = info.get_default(call_default_factory=True)
        if hasattr(default, "get_secret_value"):
            default = "set"
        lines.append(f"| `{prefix}{name.upper()}` | {_default(default)} | "
                     f"{_cell(info.description)} |")
    return "\n".join(lines)


def stage_table(config_cls: type) -> str:
    """Markdown rows of a stage config dataclass: field, default, help."""
    lines = ["| field | default | meaning |", "|---|---|---|"]
    for spec in dataclasses.fields(config_cls):
        if not spec.init:
            continue
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            default = "required"
        lines.append(f"| `{spec.name}` | {_default(default)} | "
                     f"{_cell(spec.metadata.get('help', ''))} |")
    return "\n".join(lines)


def tables() -> dict[str, str]:
    """Every generated table of the README by marker name."""
    from kg_reward.client import ClientSettings
    from kg_reward.service.settings import Settings

    generated = {
        "service-settings": settings_table(Settings, "KG_REWARD_"),
        "client-settings": settings_table(ClientSettings, "KG_REWARD_CLIENT_"),
    }
    for name, module, class_name in STAGE_CONFIGS:
        try:
            config_cls = getattr(importlib.import_module(module), class_name)
        except (ImportError, AttributeError):
            continue
        generated[f"stage-{name}"] = stage_table(config_cls)
    return generated


def readme_table(name: str) -> str:
    match = re.search(rf"<!-- table:{name} -->\n(.*?)\n<!-- /table -->", README.read_text(),
                      flags=re.S)
    assert match, f"README.md has no <!-- table:{name} --> block"
    return match.group(1).strip()


def first_column(table: str) -> set[str]:
    """The backquoted names in the first column of a Markdown table."""
    return set(re.findall(r"^\| `([^`]+)`", table, flags=re.M))


TABLE_NAMES = ("service-settings", "client-settings",
               *(f"stage-{name}" for name, _, _ in STAGE_CONFIGS))


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_readme_config_table_lists_every_field(name: str) -> None:
    generated = tables()
    if name not in generated:
        pytest.skip(f"the config class of {name} is not importable")
    assert first_column(readme_table(name)) == first_column(generated[name]), (
        f"the README table {name} is out of date; run "
        "`.venv/bin/python tests/test_readme.py --write`"
    )


def write_tables() -> None:
    """Replace every generated table of README.md with the current one."""
    text = README.read_text()
    for name, table in tables().items():
        text = re.sub(rf"(<!-- table:{name} -->\n).*?(\n<!-- /table -->)",
                      lambda match, table=table: match.group(1) + table + match.group(2),
                      text, flags=re.S)
    README.write_text(text)


if __name__ == "__main__":
    # Run as a script, Python puts tests/ first on sys.path, where tests/kg_reward would
    # shadow the kg_reward package.
    sys.path.remove(str(Path(__file__).resolve().parent))
    if "--write" in sys.argv[1:]:
        write_tables()
    else:
        for marker, table in tables().items():
            print(f"<!-- table:{marker} -->\n{table}\n<!-- /table -->\n")
