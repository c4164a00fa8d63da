"""Print docs/tested-versions.md: each dependency's range from pyproject.toml and the version the
test suite passed with in this environment (`make versions`)."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
print("# Tested versions\n")
print("The ranges ablate accepts (`pyproject.toml`) and the versions in the .venv the test suite ran in\n(`make versions` rewrites this file).\n")
print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}.\n")
print("| package | accepted | tested |\n| --- | --- | --- |")
for requirement in requirements:
    name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]
    accepted = requirement[len(name):].split(";")[0].strip() or "any"
    print(f"| {name} | `{accepted}` | {importlib.metadata.version(name)} |")
