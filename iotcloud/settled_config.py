"""gunicorn's configuration with every setting read once, for a worker that will not change it.

`Config.__getattr__` looks a setting up by name and calls its getter on every access: 49 Python
calls per request in the API worker (`yappi`, issue 7 step 108), for values that are fixed once the
worker has forked (a reload starts new workers). A worker swaps its `cfg` for this before it serves.
"""

from __future__ import annotations


class SettledConfig:
    def __init__(self, config):
        # Plain instance attributes: found before __getattr__ is ever consulted. A name Config itself
        # defines (`worker_class`, a property over the setting) keeps going through Config.
        shadowed = set(dir(type(config)))
        self.__dict__.update({name: setting.get() for name, setting in config.settings.items()
                              if name not in shadowed})
        self._config = config

    def __getattr__(self, name):
        """Config's properties and methods (`is_ssl`, `forwarded_allow_networks()`, ...), from the original."""
        return getattr(self._config, name)
