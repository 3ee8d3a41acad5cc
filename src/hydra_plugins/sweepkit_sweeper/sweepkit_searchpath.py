"""Keeps sweepkit's own configs on the search path of ``sweepkit-train``/``sweepkit-lr-find`` when
``--config-path`` makes a user's folder the primary one, so that the user's primary config can still
choose the shipped models, data, optimizers and presets. Other Hydra apps are left alone.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SWEEPKIT_CONF = "pkg://sweepkit.conf"


class SweepkitSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from sweepkit import console

        if console.active_program is None:
            return
        from sweepkit.train import CONFIG_DIR

        present = {element.path for element in search_path.get_path()}
        if SWEEPKIT_CONF not in present and f"file://{CONFIG_DIR}" not in present:
            search_path.append(provider="sweepkit", path=SWEEPKIT_CONF)
