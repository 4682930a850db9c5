"""generation: train defended classifiers, attack them, write verifiable stimulus sets (torch only here).

The names below are the Python API for scripts and notebooks (docs/api.md, "Generation Python API"):
load a stimulus set, a model it names, and re-run the attack it records.
"""

_API = ("load_stimulus_set", "load_model", "rerun_attack", "StimulusSet", "RerunResult", "GenerationError")

__all__ = list(_API)


def __getattr__(name: str):
    # loaded on first use: `import generation` (the CLI, the demo, the manifest helpers) must not load torch
    if name in _API:
        from advlegit.generation import api
        return getattr(api, name)
    raise AttributeError(f"module 'generation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
