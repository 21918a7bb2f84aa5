"""The package's settings, in astropy's configuration system.

``photutils_clusterclf.conf`` is an `astropy.config.ConfigNamespace`: set
an item for the session (``conf.offline = True``), for a block
(``with conf.set_temp("offline", True): ...``), or for good in the
package's astropy configuration file (``[config]`` section, written by
``astropy.config.create_config_file("photutils_clusterclf")``).
"""

import os

from astropy import config as _config

__all__ = ["Conf", "conf", "offline"]

#: Environment variable that forces offline mode (CI, tests, batch jobs),
#: whatever ``conf.offline`` says; any value but empty or ``0`` counts.
OFFLINE_ENV = "CLUSTERCLF_OFFLINE"


class Conf(_config.ConfigNamespace):
    """Configuration items of photutils-clusterclf."""

    offline = _config.ConfigItem(
        False,
        "Never try to download ImageNet weights: models that need them must find "
        f"them in the torch cache. ${OFFLINE_ENV} (any value but empty or 0) "
        "turns this on whatever the setting says.",
    )


conf = Conf()


def offline():
    """Whether downloads are off: ``conf.offline``, or ``$CLUSTERCLF_OFFLINE`` set.

    Returns
    -------
    off : bool
    """
    return bool(conf.offline) or os.environ.get(OFFLINE_ENV, "") not in ("", "0")
