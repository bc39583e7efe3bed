"""The ops toolkit: what runs beside the application, never inside it.

It shares only the contract (:mod:`alkana_logging.fields`, the settings' defaults) with the
runtime; ``import alkana_logging`` and ``setup()`` never import it.

- :mod:`~alkana_logging.ops.presets`: every LogQL query over the contract's lines, defined once
  (also importable as ``alkana_logging.presets``).
- :mod:`~alkana_logging.ops.configs`: the config artefacts rendered from the contract and the
  presets (shippers, logrotate, Loki rules, Alertmanager, Grafana, the local stack).
- :mod:`~alkana_logging.ops.report`: the presets' numbers computed from log files, without Loki.
- :mod:`~alkana_logging.ops.query`: the Loki query client that runs a preset.
- :mod:`~alkana_logging.ops.cli`: the ``alkana-logging`` command (``python -m alkana_logging``).
"""
