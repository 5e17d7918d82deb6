"""Defaults shared by the models and the model registry (:mod:`biomlff.models`), in one place.

A leaf module (imports only the standard library), so that pillars, calculators and the registry
can all read it.
Units: Å.
"""

#: SO3LR's long-range cutoff (Å) for periodic systems (the thesis setting); free-space systems
#: default to no cutoff (all pairs, the training setting)
DEFAULT_LR_CUTOFF = 12.0
#: width (Å) of SO3LR's dispersion switch before the long-range cutoff
DEFAULT_DISPERSION_DAMPING = 2.0
#: relative force accuracy of the lattice sums ("ewald" / "pme" electrostatics)
DEFAULT_EWALD_ACCURACY = 1e-4
#: Lennard-Jones cutoff (Å) for periodic systems (free space: all pairs)
DEFAULT_LJ_CUTOFF = 8.5


def user_cache_root():
    """biomlff's user cache directory (a ``pathlib.Path``): ``$BIOMLFF_CACHE``, else
    ``$XDG_CACHE_HOME/biomlff``, else ``~/.cache/biomlff``. It holds the SO3LR weights (``so3lr/``) and
    the persistent XLA compilation cache (``xla/``)."""
    import os
    from pathlib import Path

    if os.environ.get("BIOMLFF_CACHE"):
        return Path(os.environ["BIOMLFF_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "biomlff"


#: compilations shorter than this (s) are not written to the persistent cache (JAX's default is 1 s;
#: the SO3LR programs take 5–40 s, the small host-side ones well below 0.5 s)
COMPILE_CACHE_MIN_SECONDS = 0.5
#: size bound of the persistent compilation cache (bytes; least recently used entries go first)
COMPILE_CACHE_MAX_BYTES = 4 * 1024**3


def enable_compilation_cache(path=None) -> str | None:
    """Turn on JAX's persistent compilation cache, so that a second run of the same command reuses the
    compiled programs of the first (``biomlff eval`` on dha: first result in seconds instead of a
    recompile). ``path``: the cache directory (default: ``$BIOMLFF_COMPILE_CACHE``, else
    :func:`user_cache_root` / "xla"). ``BIOMLFF_COMPILE_CACHE=off`` (or 0/no/false) disables it, and a
    ``JAX_COMPILATION_CACHE_DIR`` the user set is left alone. Works before or after JAX is imported.
    Returns the directory in use, or None.

    The cache was off in biomlff until 2026-12: a whole-suite test process once segfaulted inside the
    cache write. The cause was the process's memory mappings (vm.max_map_count), not the cache: the test
    configuration now releases compiled code after every module."""
    import os
    import sys

    setting = os.environ.get("BIOMLFF_COMPILE_CACHE", "")
    if setting.lower() in ("0", "off", "no", "false"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") and path is None:
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    target = str(path or setting or (user_cache_root() / "xla"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = target
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(COMPILE_CACHE_MIN_SECONDS))
    # a bounded cache: JAX then evicts the least recently used entries AND takes a file lock around
    # every read and write; unbounded (its default), it writes entries in place without a lock, so a
    # second process (two test workers, two runs) could read a half-written executable
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(COMPILE_CACHE_MAX_BYTES))
    if "jax" in sys.modules:  # already imported: the environment was read; set the flags directly
        import jax

        jax.config.update("jax_compilation_cache_dir", target)
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs",
            float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
        )
        jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))
    return target
