"""The console scripts' common shell: Hydra's own command line, the user's project importable, and
every known error turned into one line and an exit status, in one place.

Hydra prints its own errors in many lines (the search path, a stack trace, advice) and exits 1.
Here Hydra lets exceptions through (``HYDRA_FULL_ERROR``) and :func:`one_line` restates the ones a
user causes: a bad config-group option (listing the options of every folder on the search path,
from Hydra's own config repository), a key that is not in the config, an override that does not
parse, a value of the wrong type, sweepkit's own ConfigError. Anything else is a bug: its traceback
is shown whole.
"""

from __future__ import annotations

import difflib
import functools
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sweepkit.errors import ConfigError, RunFailed, Stopped

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
MULTIRUN_FLAGS = ("-m", "--multirun")
INSPECT_FLAGS = ("-c", "--cfg", "-i", "--info")
CONFIG_PATH_FLAGS = ("-cp", "--config-path")
CONFIG_DIR_FLAGS = ("-cd", "--config-dir")

# Set while a sweepkit console script runs: the search-path plugin then keeps sweepkit's own configs
# on the search path even when --config-path makes the user's folder the primary one.
active_program: str | None = None


def inspect_sweep_args(argv: list[str]) -> list[str]:
    """``-m ... --cfg hydra`` shows the sweep's config: Hydra 1.3 refuses the two flags together,
    so ``-m`` becomes the override ``hydra.mode=MULTIRUN``, which composes the same config."""
    if not (set(argv) & set(MULTIRUN_FLAGS) and set(argv) & set(INSPECT_FLAGS)):
        return argv
    return ["hydra.mode=MULTIRUN"] + [a for a in argv if a not in MULTIRUN_FLAGS]  # before any flag: argparse


def absolute_config_folders(argv: Sequence[str], launch_dir: Path) -> list[str]:
    """``--config-dir``/``--config-path`` folders made absolute against the launch directory.

    Hydra takes a relative ``--config-path`` from the folder of the file that declares the app, which
    for an installed console script is inside site-packages, where no user keeps configs.
    """
    out: list[str] = []
    pending = False
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if pending:
            out.append(_absolute(arg, launch_dir))
            pending = False
        elif flag in CONFIG_PATH_FLAGS + CONFIG_DIR_FLAGS and sep:
            out.append(f"{flag}={_absolute(value, launch_dir)}")
        else:
            out.append(arg)
            pending = arg in CONFIG_PATH_FLAGS + CONFIG_DIR_FLAGS
    return out


def _absolute(path: str, launch_dir: Path) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return str((launch_dir / path).resolve())


def make_launch_dir_importable(launch_dir: Path) -> None:
    """The user's modules beside their configs import as ``python -m`` would find them."""
    path = str(launch_dir)
    if path not in sys.path:
        sys.path.insert(0, path)


def one_line(err: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for an error the user caused; None for anything else (a bug)."""
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, ConfigError):
        return str(err), EXIT_BAD_INPUT
    if isinstance(err, RunFailed):
        return str(err), EXIT_FAILED
    if isinstance(err, Stopped):  # exits as the signal would have
        return str(err), 128 + err.signum
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(err, MissingConfigException):
        return _missing_config(err), EXIT_BAD_INPUT
    if isinstance(err, OverrideParseException):
        reasons = [
            line.strip()
            for line in err.message.splitlines()[1:]
            if line.strip() and not line.startswith("See ")
        ]
        reason = reasons[0] if reasons else _first_line(err.message)
        return (
            f"the override {err.override} does not parse: {reason} (grammar: https://hydra.cc/docs/advanced/override_grammar/basic/)",
            EXIT_BAD_INPUT,
        )
    if isinstance(err, ConfigCompositionException) and isinstance(err.__cause__, OmegaConfBaseException):
        return _bad_key(err), EXIT_BAD_INPUT
    if isinstance(err, HydraException | OmegaConfBaseException):
        return _flatten(err), EXIT_BAD_INPUT
    return None


def _missing_config(err: Any) -> str:
    """``model=tiny is not one of: cnn, linear, mlp`` from Hydra's own listing of the search path."""
    missing = err.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    options = (
        err.options if err.options is not None or not group else _group_options(group)
    )  # group=[a,b]: Hydra lists none
    if options is not None and group:
        return str(ConfigError(group, option, "is not one of: " + ", ".join(sorted(options))))
    return _first_line(str(err))


def _group_options(group: str) -> list[str] | None:
    """The options sweepkit ships for ``group`` (None: not a group of sweepkit's). Hydra lists none for
    an option inside a list (``tracking=[mlflow,tensorbrd]``)."""
    folder = Path(__file__).resolve().parent / "conf" / group
    return sorted(p.stem for p in folder.glob("*.yaml")) or None


def _bad_key(err: Any) -> str:
    """A typo key: ``optimizer.lrr=0.1 is not a key of the config (did you mean optimizer.lr?)``."""
    cause = err.__cause__
    key = getattr(cause, "full_key", None) or ""
    parent = getattr(cause, "parent_node", None)
    leaf = key.rsplit(".", 1)[-1]
    known = [str(k) for k in parent] if hasattr(parent, "keys") else []
    close = difflib.get_close_matches(leaf, known, n=1)
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    hint = f"did you mean {prefix}{close[0]}? " if close else ""
    message = str(err)
    value = message.split(f"+{key}=", 1)[1].strip() if f"+{key}=" in message else "..."
    return f"{key}={value} is not a key of the config ({hint}to add a new key: +{key}={value})"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def _flatten(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    cause = err.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in str(err):
        lines.append(str(cause).strip().splitlines()[0])
    return "; ".join(lines) or type(err).__name__


def exit_with_one_line(prog: str, err: BaseException) -> None:
    """Print ``<prog>: error: <line>`` and exit with its status, or re-raise an unknown error."""
    found = one_line(err)
    if found is None:
        raise err
    line, status = found
    print(f"{prog}: error: {line}", file=sys.stderr)
    sys.exit(status)


def one_line_errors(prog: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For a console script without Hydra (argparse): every known error it raises, wherever, leaves
    through :func:`exit_with_one_line`, as a Hydra script's do in :func:`run_console_script`."""

    def wrap(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def script(*args: Any, **kwargs: Any) -> Any:
            try:
                return main(*args, **kwargs)
            except (Exception, KeyboardInterrupt) as err:
                exit_with_one_line(prog, err)

        return script

    return wrap


def _interrupt(signum: int, frame: Any) -> None:
    raise Stopped(signum)


_deferred: list[BaseException] = []  # a single run's error, raised again once Hydra has returned


def reports_errors(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """For a console script's task function: in a single run, a known error is kept and shown as its
    one line after Hydra returns (Hydra would first print "Error executing job with overrides: ...").
    In a multirun the job raises as before, so that it fails and the sweep goes on."""

    @functools.wraps(task)
    def run_task(cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        try:
            return task(cfg)
        except Exception as err:
            if HydraConfig.get().mode != RunMode.RUN or one_line(err) is None:
                raise
            _deferred.append(err)
            return None

    return run_task


def run_console_script(prog: str, main: Callable[[], Any]) -> None:
    """A sweepkit console script: Hydra's command line as Hydra documents it, the launch directory
    importable, and every way out through :func:`exit_with_one_line`."""
    global active_program
    launch_dir = Path.cwd()
    sys.argv[1:] = absolute_config_folders(inspect_sweep_args(sys.argv[1:]), launch_dir)
    make_launch_dir_importable(launch_dir)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing; the one line is ours
    signal.signal(
        signal.SIGTERM, _interrupt
    )  # a run ends its tracked run KILLED, not RUNNING (sweeps: their own)
    active_program = prog
    try:
        main()
        if _deferred:
            raise _deferred.pop()
    except (Exception, KeyboardInterrupt) as err:
        exit_with_one_line(prog, err)
    finally:
        active_program = None
        exit_quickly()


def exit_quickly() -> None:
    """Let the process end without the collector's last passes over what it holds: the objects of torch
    and its kin (a million and more) take 1-2 s to collect on the way out of every command, and the
    system frees them at once. Exit handlers, open files and threads end as usual."""
    gc.freeze()
