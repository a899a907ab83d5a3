"""The lowest versions pyproject.toml declares, as pip constraints (``pkg==X`` for every ``pkg>=X``).

``python .ci/lower_bounds.py`` prints the constraints for the runtime dependencies and the
``test`` extra; ``--check`` verifies that the running environment has exactly those versions
(pip may not silently pick another).
"""

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def lower_bounds() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    bounds = {}
    for req in requirements:
        spec, _, marker = req.partition(";")
        if marker and "python_version" in marker and "3.11" in marker and sys.version_info >= (3, 11):
            continue  # e.g. tomli, only for Python < 3.11
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,\s]*)\s*", spec)
        if m is None:
            raise SystemExit(f"pyproject.toml: {req!r} has no lower bound '>=X' (every dependency needs one)")
        bounds[m.group(1)] = m.group(2)
    return bounds


def main() -> int:
    bounds = lower_bounds()
    if "--check" not in sys.argv:
        print("\n".join(f"{name}=={version}" for name, version in bounds.items()))
        return 0
    from importlib.metadata import version

    def norm(v):
        parts = [int(x) if x.isdigit() else x for x in v.split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return parts

    wrong = {name: version(name) for name, want in bounds.items() if norm(version(name)) != norm(want)}
    if wrong:
        print(f"the lowest-versions environment has other versions: {wrong}; expected {bounds}", file=sys.stderr)
        return 1
    print(f"running the suite with the lowest declared versions: {bounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
