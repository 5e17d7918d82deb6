"""The one YAML-plus-overrides loader: defaults < a YAML file of ``option: value`` < options given on
the command line (None = not given). ``biomlff md``/``opt``/``ipi`` (:func:`biomlff.cli.md.resolve_options`)
and ``biomlff train`` (:meth:`biomlff.training.config.TrainConfig.from_yaml`) both read their files
through it, so both accept ``-`` or ``_`` in keys and report unknown keys and bad files the same way.
Below every pillar: imports PyYAML when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import ConfigError


def read_yaml_mapping(path, what: str = "config file") -> dict:
    """The mapping in a YAML file, keys with ``-`` turned into ``_``. ConfigError naming the file if
    it is missing, unreadable, not YAML or not a mapping (an empty file is an empty mapping)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def merge_options(
    defaults: Mapping,
    path=None,
    overrides: Mapping | None = None,
    *,
    extra_keys: Iterable[str] = (),
    rename=None,
    what: str = "config file",
) -> dict:
    """``defaults`` updated by the YAML file ``path`` (if given) and then by ``overrides`` whose value
    is not None. A file key must be a key of ``defaults`` or of ``extra_keys`` (ConfigError listing
    the known keys otherwise); ``rename(key, value) -> key`` may map a former key name first."""
    opts = dict(defaults)
    if path:
        known = set(defaults) | set(extra_keys)
        for key, value in read_yaml_mapping(path, what).items():
            key = rename(key, value) if rename is not None else key
            if key not in known:
                raise ConfigError(f"unknown option {key!r} in {path}; known: {', '.join(sorted(known))}")
            opts[key] = value
    opts.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return opts
