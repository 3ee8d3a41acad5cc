"""``sweepkit-init DIR``: a small working project of the user's own, to edit.

    sweepkit-init myproj && cd myproj && sweepkit-train -m --config-dir conf hparams_search=tiny_search

It writes a model module, a data-source module, one config file each for ``model``, ``data`` and
``hparams_search``, and a README whose commands run as written from ``DIR``. It never overwrites:
if any of its files exists already, it writes nothing and says which.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from sweepkit.console import one_line_errors
from sweepkit.errors import ConfigError

TEMPLATE = Path(__file__).resolve().parent / "project_template"


def template_files() -> list[Path]:
    """The scaffold's files, relative to its root."""
    return sorted(
        p.relative_to(TEMPLATE) for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def write_project(target: Path) -> list[Path]:
    """Copy the scaffold into ``target``; raises ConfigError, having written nothing, if a file exists."""
    files = template_files()
    taken = [str(f) for f in files if (target / f).exists()]
    if taken:
        raise ConfigError(
            "DIR",
            str(target),
            f"already holds {', '.join(taken)}: sweepkit-init never overwrites; choose another folder",
        )
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATE / relative, target / relative)
    return [target / f for f in files]


@one_line_errors("sweepkit-init")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sweepkit-init", description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="the folder to make the project in (made if missing)")
    args = parser.parse_args(argv)
    target = Path(args.dir)
    for path in write_project(target):
        print(f"wrote {path}")
    print(f"next: cd {target} && sweepkit-train -m --config-dir conf hparams_search=tiny_search")


if __name__ == "__main__":
    main()
