"""The application that runs experiment configs: the experiment registry, config
validation, and run directories with their locks and status.

`diffsim.cli` is built on it; library users (notebooks) never need it. The library never
imports the application: experiments are found through the entry-point group
`diffsim.experiments` (diffsim's own `diffsim_experiments`, and any installed package's),
or as a user's `module:function`.
"""

from ._config import (
    ConfigError as ConfigError,
    build_config as build_config,
    parse_override as parse_override,
    to_toml as to_toml,
)
from ._registry import (
    GROUP as GROUP,
    Experiment as Experiment,
    find_experiment as find_experiment,
    list_experiments as list_experiments,
)
from ._runs import (
    CONFIG_FILE as CONFIG_FILE,
    LOCK_FILE as LOCK_FILE,
    LOG_FILE as LOG_FILE,
    METRICS_FILE as METRICS_FILE,
    STATUS_FILE as STATUS_FILE,
    ParallelSettings as ParallelSettings,
    Run as Run,
    RunError as RunError,
    RunPlan as RunPlan,
    claim_run as claim_run,
    execute as execute,
    failure_reason as failure_reason,
    load_config as load_config,
    plan_run as plan_run,
    run_experiment as run_experiment,
    summary_table as summary_table,
)
