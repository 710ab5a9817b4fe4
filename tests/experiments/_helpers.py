"""Helpers shared by the experiment tests (imported as `from _helpers import small`)."""

import dataclasses

from diffsim.runner import find_experiment


def small(name, **changes):
    """The registered experiment `name` and its default config with `changes` applied."""
    exp = find_experiment(name)
    return exp, dataclasses.replace(exp.config_cls(), **changes)
