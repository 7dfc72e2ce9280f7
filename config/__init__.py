"""Settings shared by every assetproof service (see ``config.settings``), the wall clock
(``config.clock``) and the MQTT versions (``config.mqtt``). Imports nothing of the project but
``protocol.errors``, so every package that runs a service may import it (``protocol`` and
``auditor`` do not need to)."""

from config.settings import ANVIL_DEV_KEY, PREFIX, Settings, SettingsError, load_settings

__all__ = ["ANVIL_DEV_KEY", "PREFIX", "Settings", "SettingsError", "load_settings"]
