"""The application that runs experiment configs: config validation, run directories, registry.

Library users (notebooks) never need this; `diffsim.cli` is built on it.
"""

from ._config import (
    ConfigError as ConfigError,
    build_config as build_config,
    parse_override as parse_override,
    to_toml as to_toml,
)
from ._runs import (
    CONFIG_FILE as CONFIG_FILE,
    METRICS_FILE as METRICS_FILE,
    Experiment as Experiment,
    Run as Run,
    find_experiment as find_experiment,
    list_experiments as list_experiments,
    load_config as load_config,
    new_run_dir as new_run_dir,
    run_experiment as run_experiment,
    summary_table as summary_table,
)
