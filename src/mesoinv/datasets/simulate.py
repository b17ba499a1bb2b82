"""Entry points of the simulation stage."""

from .kinds import spec_from_entry

__all__ = ["dataset_spec"]


def dataset_spec(config: dict, name: str):
    """The spec of dataset ``name`` of a validated config (clear error for an unknown name)."""
    try:
        entry = config["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(config["datasets"]))
        raise ValueError(f"no dataset '{name}' in the config (known: {known})") from None
    return spec_from_entry(name, entry)
