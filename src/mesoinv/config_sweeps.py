"""Sweeps and seed replicates: config sections that expand into ordinary model entries.

Split from :mod:`mesoinv.config` (same stage): :func:`mesoinv.config.validate_config` calls
:func:`expand_sweeps` then :func:`expand_replicates` after the schema check, and every name
here is re-exported by :mod:`mesoinv.config`. Errors are :class:`mesoinv.config.ConfigError`
naming the offending key.
"""

import copy
import itertools
import math
import random

from .config import ConfigError, _check_model, _check_schema, _key

# -- sweeps ------------------------------------------------------------------------------
#: Model kinds a sweep may take as its base (P1: validation metrics with intervals).
SWEEP_MODEL_KINDS = ("p1_parameter_cnn", "p1_fourier_cnn", "p1_encoder_decoder")
SWEEP_MODES = ("grid", "random", "learning_curve")
#: More points than this in one sweep is a typo in a grid, not a plan (one job per point).
MAX_SWEEP_POINTS = 1000
#: Validation metrics a sweep selects on, per family: metric → higher is better.
SELECTION_METRICS = {
    "parameters": {"relative_error_std": False, "error_std": False, "rmse": False, "r2": True},
    "potential": {"r_p_median": True, "r_p_mean": True, "r_p_q05": True,
                  "relative_rmse": False, "fraction_r_p_above_0_9": True,
                  "fraction_r_p_above_0_99": True},
}
#: Metrics without units, which may be averaged over the targets (``target: mean``).
_DIMENSIONLESS = ("relative_error_std", "r2")


def _family(kind: str) -> str:
    return "parameters" if kind == "p1_parameter_cnn" else "potential"


def sweep_selection(config: dict, name: str) -> dict:
    """``{"metric", "target", "higher_is_better"}`` of sweep ``name`` of a validated config.

    ``target`` is a target name, ``"mean"`` (the mean of the metric over the model's targets)
    or ``"potential"`` (potential models)."""
    selection = config["sweeps"][name]["selection"]
    kind = config["models"][config["sweeps"][name]["base"]]["kind"]
    return {**selection, "higher_is_better": SELECTION_METRICS[_family(kind)][selection["metric"]]}


def sweep_points(config: dict) -> dict:
    """``{sweep: [point model names in point order]}`` of a validated (expanded) config."""
    out = {name: [] for name in config.get("sweeps", {})}
    for model, entry in config.get("models", {}).items():
        if "sweep" in entry:
            out[entry["sweep"]["name"]].append((entry["sweep"]["point"], model))
    return {name: [model for _, model in sorted(points)] for name, points in out.items()}


def _set_dotted(entry: dict, dotted: str, value, key: str):
    """``entry[a][b][c] = value`` for ``dotted = "a.b.c"``; missing (or null) mappings on the
    way are created, so ``early_stopping.patience`` works on a base without early stopping."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(key, f"'{dotted}' is not a dotted key (empty part)")
    if parts[0] in ("kind", "sweep", "name"):
        raise ConfigError(key, f"a sweep cannot change '{parts[0]}' (sweep a dataset, a "
                               "hyperparameter or train_subset, not the model's kind)")
    node = entry
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[part] = {}
        elif not isinstance(node[part], dict):
            raise ConfigError(key, f"'{'.'.join(parts[:depth + 1])}' of the base model is "
                                   f"{node[part]!r}, not a mapping: '{dotted}' cannot be set")
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _significant(value: float) -> float:
    return float(f"{value:.4g}")


def _draw(rng: random.Random, spec: dict, key: str):
    """One value of a random sweep's space entry (see the schema's ``sweep.random``)."""
    (how, values), = spec.items()
    if how == "choices":
        return copy.deepcopy(values[rng.randrange(len(values))])
    low, high = values
    if low > high:
        raise ConfigError(f"{key}.{how}", f"[{low}, {high}] has low > high")
    if how == "integers":
        return rng.randint(low, high)
    if how == "uniform":
        return _significant(rng.uniform(low, high))
    return _significant(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sweep_plan(key: str, sweep: dict) -> list:
    """``[(suffix, {dotted key: (value, config key reported on error)})]`` of a sweep."""
    modes = [mode for mode in SWEEP_MODES if mode in sweep]
    if len(modes) != 1:
        raise ConfigError(key, f"needs exactly one of {', '.join(SWEEP_MODES)} (has "
                               f"{', '.join(modes) or 'none'})")
    mode = modes[0]
    if mode == "grid":
        grid = sweep["grid"]
        count = math.prod(len(values) for values in grid.values())
        if count > MAX_SWEEP_POINTS:
            raise ConfigError(f"{key}.grid", f"{count:,} points, more than {MAX_SWEEP_POINTS}")
        points = [{k: (v, f"{key}.grid.{k}") for k, v in zip(grid, values)}
                  for values in itertools.product(*grid.values())]
    elif mode == "random":
        spec = sweep["random"]
        rng = random.Random(spec["seed"])
        points = []
        space = spec["space"]
        for _ in range(spec["n_points"]):
            # drawn in sorted key order: the sample does not depend on the YAML's key order
            drawn = {k: _draw(rng, space[k], f"{key}.random.space.{k}") for k in sorted(space)}
            point = {k: (drawn[k], f"{key}.random.space.{k}") for k in space}
            if point not in points:  # a small space drawn twice: one job, not two
                points.append(point)
    else:
        curve = sweep["learning_curve"]
        sizes = sorted(curve["n_samples"])
        datasets = curve.get("datasets")
        if len(sizes) * len(datasets or [None]) < 2:
            raise ConfigError(f"{key}.learning_curve.n_samples",
                              "a learning curve needs at least two points: two sizes, or "
                              "one size on two datasets (learning_curve.datasets)")

        def subset(n):
            return {"train_subset.n_samples": (n, f"{key}.learning_curve.n_samples"),
                    "train_subset.seed": (curve["seed"], f"{key}.learning_curve.seed")}

        if datasets is None:
            return [(f"n{n}", subset(n)) for n in sizes]
        return [(f"{dataset}_n{n}",
                 {"dataset": (dataset, f"{key}.learning_curve.datasets.{index}"), **subset(n)})
                for index, dataset in enumerate(datasets) for n in sizes]
    width = max(2, len(str(len(points) - 1)))
    return [(f"{index:0{width}d}", point) for index, point in enumerate(points)]


def _check_selection(key: str, sweep: dict, base: dict):
    """Resolve the selection defaults of a sweep in place and check them against its base."""
    family = _family(base["kind"])
    metrics = SELECTION_METRICS[family]
    selection = sweep["selection"]
    selection.setdefault("metric", next(iter(metrics)))
    if selection["metric"] not in metrics:
        raise ConfigError(f"{key}.selection.metric",
                          f"{selection['metric']} is not a metric of {base['kind']} models "
                          f"(known: {', '.join(metrics)})")
    if family == "potential":
        selection.setdefault("target", "potential")
        allowed = ["potential"]
    else:
        selection.setdefault("target", "mean")
        allowed = ["mean", *base["targets"]]
    if selection["target"] not in allowed:
        raise ConfigError(f"{key}.selection.target", f"{selection['target']!r} is not a "
                                                     f"target of the base model (known: "
                                                     f"{', '.join(allowed)})")
    if selection["target"] == "mean" and selection["metric"] not in _DIMENSIONLESS:
        raise ConfigError(f"{key}.selection.target",
                          f"the mean of {selection['metric']} over targets of different units "
                          f"means nothing: name one target or use {' or '.join(_DIMENSIONLESS)}")


def _point_error(error: ConfigError, point: str, plan: dict, sweep_key: str) -> ConfigError:
    """An error found in a point's model entry, reported under the sweep key that caused it
    (the longest override key that is a prefix of the error's key)."""
    path = error.key.split(".")[2:]  # models.<point>.<path>
    owners = [k for k in plan if path[:len(k.split("."))] == k.split(".")]
    owner = max(owners, key=len) if owners else None
    values = ", ".join(f"{k} = {v!r}" for k, (v, _) in plan.items())
    where = plan[owner][1] if owner else sweep_key
    return ConfigError(where, f"point '{point}' ({values}): {'.'.join(path)}: {error.reason}")


def expand_sweeps(config: dict) -> dict:
    """Expand ``config["sweeps"]`` into ordinary model entries, in place (called by
    :func:`validate_config` after the schema and the hand-written models are checked).

    Each point is a deep copy of the base entry with the sweep's ``overrides`` and the
    point's own values set at their dotted keys, plus a ``sweep`` record (name, point index,
    the point's overrides); it is named ``<sweep>_<index>`` (grid, random; zero-padded) or
    ``<sweep>_n<N>`` (learning curve), validated like a hand-written entry, and inserted into
    ``config["models"]``. A learning curve with ``datasets`` makes one point per dataset and
    size, ``<sweep>_<dataset>_n<N>``. Entries a previous expansion wrote are replaced, so
    validating a validated config changes nothing.

    Raises
    ------
    ConfigError
        A base that is not a P1 model entry, a point name taken by another model, a bad
        selection, or a point whose entry is invalid (reported under the sweep key whose
        value made it so, with the point named).
    """
    models = config.setdefault("models", {})
    earlier = {name for name, entry in models.items() if "sweep" in entry}
    for name in sorted(earlier):
        if models[name]["sweep"]["name"] not in config.get("sweeps", {}):
            raise ConfigError(f"models.{name}.sweep", "is written by the sweep expansion, not "
                                                      "by hand, and no sweep of that name exists")
        del models[name]
    plans = {}  # point name → (its overrides with their config keys, the sweep's key)
    for sweep_name, sweep in config.get("sweeps", {}).items():
        key = f"sweeps.{sweep_name}"
        base = models.get(sweep["base"])
        if base is None:
            raise ConfigError(f"{key}.base", f"no model '{sweep['base']}' (known: "
                                             f"{', '.join(sorted(models)) or 'none'})")
        if base["kind"] not in SWEEP_MODEL_KINDS:
            raise ConfigError(f"{key}.base", f"'{sweep['base']}' is a {base['kind']} model; "
                                             f"sweeps take {', '.join(SWEEP_MODEL_KINDS)}")
        curve_datasets = sweep.get("learning_curve", {}).get("datasets")
        for index, dataset in enumerate(curve_datasets or [base["dataset"]]):
            where = (f"{key}.learning_curve.datasets.{index}" if curve_datasets
                     else f"{key}.base")
            if dataset not in config["datasets"]:
                raise ConfigError(where, f"no dataset '{dataset}' (known: "
                                         f"{', '.join(sorted(config['datasets']))})")
            splits = config["datasets"][dataset]["splits"]  # the schema filled the default
            for split in ("val", "test"):
                if splits[split] == 0:
                    raise ConfigError(where, f"dataset '{dataset}' has no {split} split: "
                                             "points are chosen on val, scored on test")
        _check_selection(key, sweep, base)
        fixed = {k: (v, f"{key}.overrides.{k}") for k, v in sweep.get("overrides", {}).items()}
        for index, (suffix, point) in enumerate(_sweep_plan(key, sweep)):
            name = f"{sweep_name}_{suffix}"
            if name in models:
                raise ConfigError(key, f"its point '{name}' has the name of another model: "
                                       "rename the sweep or that model")
            plan = {**fixed, **point}
            entry = copy.deepcopy(base)
            for dotted, (value, where) in plan.items():
                _set_dotted(entry, dotted, value, where)
            entry["sweep"] = {"name": sweep_name, "point": index,
                              "overrides": {k: copy.deepcopy(v) for k, (v, _) in point.items()}}
            models[name] = entry
            plans[name] = (plan, key)
    if plans:
        try:  # one pass for every point: defaults filled, types and ranges checked
            _check_schema(config)
            for name in plans:
                _check_model(f"models.{name}", models[name], config["datasets"])
        except ConfigError as error:
            name = error.key.split(".")[1] if error.key.startswith("models.") else None
            if name not in plans:
                raise
            raise _point_error(error, name, *plans[name]) from None
    stale = sorted(earlier - set(plans))
    if stale:
        raise ConfigError(f"models.{stale[0]}.sweep", "is written by the sweep expansion, not "
                                                      "by hand, and no sweep makes this point")
    return config


# -- seed replicates ---------------------------------------------------------------------
def replicate_groups(config: dict) -> dict:
    """``{model: [(seed, entry name)]}`` of a validated (expanded) config: per replicated
    model its own seed first, then its replicates in the order of ``seed_replicates.seeds``."""
    models = config.get("models", {})
    groups = {}
    for name, entry in models.items():
        if "replicate" in entry:
            base = entry["replicate"]["base"]
            groups.setdefault(base, [(models[base]["seed"], base)]).append(
                (entry["replicate"]["seed"], name))
    return groups


def expand_replicates(config: dict) -> dict:
    """Expand ``config["seed_replicates"]`` into ordinary model entries, in place (called by
    :func:`validate_config` after :func:`expand_sweeps`).

    Each replicate of model ``m`` and seed ``k`` is a deep copy of ``m``'s entry with
    ``seed: k`` and a ``replicate`` record ``{base: m, seed: k}``, named ``m_seed<k>`` and
    inserted into ``config["models"]``: trained, predicted and scored on ``m``'s evaluation
    split by the ordinary rules, for every model kind. Entries a previous expansion wrote are
    replaced, so validating a validated config changes nothing.

    Raises
    ------
    ConfigError
        Under ``seed_replicates.models.<i>`` for an unknown model or a sweep point, under
        ``seed_replicates.seeds.<i>`` for a model's own seed or a replicate name taken by
        another model, under ``models.<name>.replicate`` for a record written by hand.
    """
    models = config.setdefault("models", {})
    replicates = config.get("seed_replicates")
    earlier = [name for name, entry in models.items() if "replicate" in entry]
    if earlier and replicates is None:
        raise ConfigError(f"models.{earlier[0]}.replicate",
                          "is written by the seed-replicate expansion, not by hand, and the "
                          "config has no seed_replicates")
    for name in earlier:
        del models[name]
    if replicates is None:
        return config
    key = "seed_replicates"
    names = replicates.get("models")
    if names is None:
        names = [name for name, entry in models.items() if "sweep" not in entry]
    added = set()
    for index, base in enumerate(names):
        where = f"{key}.models.{index}"
        if base not in models:
            raise ConfigError(where, f"no model '{base}' (known: "
                                     f"{', '.join(sorted(models)) or 'none'})")
        if "sweep" in models[base]:
            raise ConfigError(where, f"'{base}' is a point of sweep "
                                     f"'{models[base]['sweep']['name']}', scored on val only: "
                                     "replicate a model entry (e.g. the sweep's base)")
        for position, seed in enumerate(replicates["seeds"]):
            where = f"{key}.seeds.{position}"
            if seed == models[base]["seed"]:
                raise ConfigError(where, f"{seed} is the seed of '{base}' itself: its replicate "
                                         "would repeat it; give seeds no listed model uses")
            name = f"{base}_seed{seed}"
            if name in models and name not in added:
                raise ConfigError(where, f"the replicate '{name}' of '{base}' has the name of "
                                         "another model: rename that model")
            entry = copy.deepcopy(models[base])
            entry["seed"] = seed
            entry["replicate"] = {"base": base, "seed": seed}
            models[name] = entry
            added.add(name)
    stale = [name for name in earlier if name not in added]
    if stale:
        raise ConfigError(f"models.{stale[0]}.replicate",
                          "is written by the seed-replicate expansion, not by hand, and "
                          "seed_replicates makes no such replicate")
    return config
