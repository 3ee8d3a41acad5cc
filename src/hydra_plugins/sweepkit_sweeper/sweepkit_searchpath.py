"""Keeps sweepkit's own configs on the search path of ``sweepkit-train``/``sweepkit-lr-find`` when
``--config-path`` makes a user's folder the primary one, so that the user's primary config can still
choose the shipped models, data, optimizers and presets. Other Hydra apps are left alone.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class SweepkitSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from sweepkit import console

        if console.active_program is None:
            return
        from sweepkit.train import CONFIG_DIR

        present = {
            element.path.removeprefix("file://") for element in search_path.get_path()
        }  # a plain path is a folder too
        if CONFIG_DIR not in present:
            search_path.append(provider="sweepkit", path=f"file://{CONFIG_DIR}")
