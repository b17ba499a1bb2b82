"""Workflow configuration: loading, JSON-schema validation with defaults, consistency checks.

The schema (``mesoinv/schemas/config.schema.yaml``, also at ``workflow/schemas/``) rejects
unknown keys and wrong types; :func:`validate_config` then checks what a schema cannot
(ranges whose min exceeds max, lengths that are not whole numbers of lattice sites, …).
Every error is a :class:`ConfigError` naming the offending key as a dotted path, raised
before anything is written.
"""

import copy
import functools
import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["ConfigError", "load_config", "validate_config", "load_schema", "sample_config_hash",
           "parameter_range", "dataset_definition", "check_duplicate_keys", "check_config_file",
           "precision_refusal", "expand_sweeps", "sweep_points", "sweep_selection",
           "SELECTION_METRICS", "SWEEP_MODEL_KINDS", "expand_replicates", "replicate_groups"]

#: Physically sensible bounds, checked beyond the schema (units in the key names).
DOPANT_DISTANCE_BOUNDS_NM = (5.0, 500.0)
DOPANT_DENSITY_BOUNDS_CM2 = (1e9, 1e14)

#: Keys of a dataset entry that do not change any sample's content (excluded from its hash
#: and from the definition that simulation jobs depend on).
NON_SAMPLE_KEYS = ("n_samples", "shard_size", "splits", "split_by", "on_sample_failure")

#: Sizes beyond which a dataset's cost is absurd (memory of one job, or of Snakemake's DAG):
#: refused with the key named instead of exhausting memory hours later. P1 at paper scale is
#: 49,152 sites and 376 Fourier modes; the paper config has 482 shard jobs.
MAX_SITES_PER_SAMPLE = 2_000_000
MAX_FOURIER_MODES = 1_000_000
MAX_SHARDS_PER_DATASET = 20_000
MAX_DATASET_BYTES = 10 * 2**40
#: P2 antidot-class enumeration holds ~12 int64 arrays of W² (2L + 5) entries (P2: 312,500).
MAX_P2_ENUMERATION = 5_000_000

#: Lightning precisions a model kind's ``precision`` does not offer, and why (the refusal
#: names the key and gives this reason; docs/models.md "Precision"). Keys are kinds, ``None``
#: for every kind; values map a precision to its reason.
PRECISION_REFUSALS = {
    None: {
        "bf16-true": "bf16-true keeps the weights themselves in bfloat16 (8 significant bits): "
                     "an optimizer update smaller than about 1/256 of a weight rounds away, and "
                     "the inputs and targets are rounded to bfloat16 too; use bf16-mixed "
                     "(bfloat16 compute, float32 weights)",
        "16-true": "16-true keeps the weights in float16 without loss scaling: small gradients "
                   "underflow to zero and small updates round away; use bf16-mixed (or "
                   "16-mixed for P1 models)",
        "transformer-engine": "FP8 training needs NVIDIA Transformer Engine, which mesoinv "
                              "does not install, and its layers; use bf16-mixed",
        "transformer-engine-float16": "FP8 training needs NVIDIA Transformer Engine, which "
                                      "mesoinv does not install, and its layers; use bf16-mixed",
    },
    "p2_diffusion": {
        "16-mixed": "Lightning's 16-mixed (fp16 AMP) plugin calls the optimizer closure itself "
                    "and then scaler.step(optimizer) without it, which SAM's two-pass step "
                    "cannot run, and fp16 without loss scaling underflows; use bf16-mixed "
                    "(GPUs with bf16) or 32-true",
    },
}

#: Lightning's short precision aliases, refused in favour of the full names.
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.reason = message
        super().__init__(f"config key '{key}': {message}")


def load_schema() -> dict:
    """The configuration JSON schema as a dict."""
    text = resources.files("mesoinv").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that ``default`` values are filled in."""
    import jsonschema

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema \
                        and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(checker, instance):
    """JSON-schema 'integer' means a Python int here: 6.0 or 1e9 are floats, which range()
    and netCDF attributes refuse later; one validator, one answer."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _validator_class():
    """The schema validator: Draft 2020-12, Python-int integers, defaults filled in. Built on
    first use, so that modules which only read validated definitions (training, prediction)
    import without jsonschema."""
    import jsonschema

    return _with_defaults(jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer",
                                                                           _is_integer)))


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def parameter_range(value) -> tuple[float, float]:
    """(min, max) of a ``[min, max]`` list or a single fixed value."""
    if isinstance(value, (list, tuple)):
        return float(value[0]), float(value[1])
    return float(value), float(value)


_FLOAT_LITERAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _yaml11_floats(value):
    """Turn strings such as '1.0e12' into floats.

    PyYAML (and Snakemake's loader) follow YAML 1.1, where ``1.0e12`` without a sign in the
    exponent is a *string*; physicists write densities that way, so it is read as the number
    it obviously is.
    """
    if isinstance(value, dict):
        return {k: _yaml11_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml11_floats(v) for v in value]
    if isinstance(value, str) and _FLOAT_LITERAL.match(value.strip()):
        return float(value)
    return value


def _check_finite(value, path=()):
    """Every number of the config is finite: NaN compares false with every bound, so a schema
    range alone lets it through (and ±inf overflows later, far from its key)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, (*path, index))
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(_key(path), f"{value} is not a finite number (NaN and ±inf are not "
                                      "allowed anywhere in the config)")


def _type_message(error) -> str:
    expected = error.validator_value if isinstance(error.validator_value, list) \
        else [error.validator_value]
    if "integer" in expected and isinstance(error.instance, float):
        if error.instance.is_integer():
            return (f"{error.instance!r} is not an integer: write whole numbers without a "
                    f"decimal point or exponent (e.g. {int(error.instance)})")
        return f"{error.instance!r} is not an integer"
    return error.message


def validate_config(config: dict) -> dict:
    """Validate a configuration and return a copy with defaults filled in.

    Raises
    ------
    ConfigError
        On the first problem found, naming the key (e.g. ``datasets.p1.n_samples``).
    """
    if not isinstance(config, dict):
        raise ConfigError("<top level>", f"expected a mapping, got {type(config).__name__}")
    config = _yaml11_floats(copy.deepcopy(config))
    _check_finite(config)
    _check_schema(config)
    seeds = {}
    for name, dataset in config["datasets"].items():
        _check_dataset(f"datasets.{name}", dataset)
        if dataset["seed"] in seeds:
            raise ConfigError(f"datasets.{name}.seed",
                              f"{dataset['seed']} is also the seed of dataset "
                              f"'{seeds[dataset['seed']]}': their samples would share random "
                              "numbers (correlated datasets); give each dataset its own seed")
        seeds[dataset["seed"]] = name
    for name, model in config.get("models", {}).items():
        if "sweep" not in model:
            _check_model(f"models.{name}", model, config["datasets"])
    expand_sweeps(config)
    expand_replicates(config)
    figure_ids = config.get("figures", {}).get("sample_ids", [])
    for name, dataset in config["datasets"].items():
        for sample_id in figure_ids:
            if sample_id >= dataset["n_samples"]:
                raise ConfigError("figures.sample_ids",
                                  f"sample id {sample_id} does not exist in dataset '{name}' "
                                  f"({dataset['n_samples']} samples)")
    return config


def _check_schema(config):
    """One pass of the JSON schema (defaults filled in place); the first error, by depth,
    becomes a ConfigError naming its key."""
    validator = _validator_class()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
            extra = sorted(k for k in set(error.instance) - set(error.schema.get("properties", {}))
                           if not any(p.search(k) for p in patterns))
            key = _key(list(error.path) + extra[:1])
            raise ConfigError(key, f"unknown key (allowed: "
                                   f"{', '.join(sorted(error.schema.get('properties', {})))})")
        if error.validator == "type":
            raise ConfigError(_key(error.path), _type_message(error))
        reason = _precision_refusal(config, error)
        raise ConfigError(_key(error.path), error.message + (f": {reason}" if reason else ""))


def precision_refusal(kind: str | None, precision) -> str | None:
    """Why ``precision`` is refused for a model of ``kind`` (:data:`PRECISION_REFUSALS`,
    Lightning's aliases), or None when no reason is known."""
    reasons = {**PRECISION_REFUSALS[None], **PRECISION_REFUSALS.get(kind, {})}
    if isinstance(precision, str) and precision in reasons:
        return reasons[precision]
    if isinstance(precision, (str, int)) and not isinstance(precision, bool) \
            and str(precision) in PRECISION_ALIASES:
        full = PRECISION_ALIASES[str(precision)]
        if full in reasons:
            return f"{precision!r} is Lightning's short alias of '{full}', refused: {reasons[full]}"
        return f"{precision!r} is Lightning's short alias: write '{full}'"
    return None


def _precision_refusal(config, error) -> str | None:
    """The reason for a schema error on ``models.<name>.precision``, else None."""
    path = list(error.path)
    if error.validator != "enum" or len(path) != 3 or path[0] != "models" \
            or path[2] != "precision":
        return None
    model = config.get("models", {}).get(path[1])
    return precision_refusal(model.get("kind") if isinstance(model, dict) else None,
                             error.instance)


def _check_range(key, value, bounds, unit):
    low, high = parameter_range(value)
    if low > high:
        raise ConfigError(key, f"range [{low}, {high}] has min > max")
    if low < bounds[0] or high > bounds[1]:
        raise ConfigError(key, f"{value} {unit} is outside the allowed {bounds[0]:g}–{bounds[1]:g} {unit}")


def _check_splits(key, dataset):
    splits = dataset["splits"]
    if abs(sum(splits.values()) - 1) > 1e-9:
        raise ConfigError(f"{key}.splits", f"fractions {splits} add up to "
                                           f"{sum(splits.values()):g}, not 1")
    if splits["train"] == 0:
        raise ConfigError(f"{key}.splits.train", "the training split cannot be empty")
    for split, fraction in splits.items():
        if 0 < fraction * dataset["n_samples"] < 1:
            raise ConfigError(f"{key}.splits.{split}",
                              f"{fraction:g} of {dataset['n_samples']} samples is less than one "
                              "sample: raise n_samples or set the fraction to 0")


def _check_dataset(key, dataset):
    _check_splits(key, dataset)
    if dataset["kind"] == "p2_magnetoconductance":
        _check_p2_dataset(key, dataset)
    else:
        _check_p1_dataset(key, dataset)
    n_shards = -(-dataset["n_samples"] // dataset["shard_size"])
    if n_shards > MAX_SHARDS_PER_DATASET:
        raise ConfigError(f"{key}.shard_size",
                          f"{dataset['n_samples']:,} samples in shards of {dataset['shard_size']} "
                          f"are {n_shards:,} shard jobs, more than the {MAX_SHARDS_PER_DATASET:,} "
                          "a Snakemake DAG handles well: raise shard_size")


def _check_p2_dataset(key, dataset):
    from .physics.antidots import PairConstraints, count_classes
    from .physics.nanowire import NanowireGeometry

    low, high = dataset["transport"]["field_range_T"]
    if low > high:
        raise ConfigError(f"{key}.transport.field_range_T", f"[{low}, {high}] has min > max")
    g, a = dataset["geometry"], dataset["antidots"]
    width = g["width_sites"]
    energy = dataset["transport"]["energy_t"]
    threshold = 2 * (1 - math.cos(math.pi / (width + 1)))
    if energy <= threshold:
        raise ConfigError(f"{key}.transport.energy_t",
                          f"{energy} t is below the first channel of the {width}-site wire "
                          f"({threshold:.4f} t)")
    # At a channel threshold a lead mode has zero velocity: Kwant and the fast path then
    # disagree on the channel count. Keep E away from the clean wire's B = 0 thresholds.
    for n in range(1, width + 1):
        edge = 2 * (1 - math.cos(n * math.pi / (width + 1)))
        if abs(energy - edge) < 1e-6:
            raise ConfigError(f"{key}.transport.energy_t",
                              f"{energy} t is at the threshold of channel {n} ({edge:.8f} t) of "
                              f"the {width}-site wire; move it off the threshold")
    geometry = NanowireGeometry(width_sites=width, length_sites=g["length_sites"],
                                antidot_radius=float(g["antidot_radius_sites"]),
                                lattice_constant_nm=float(g["lattice_constant_nm"]))
    constraints = PairConstraints(margin_x=a["margin_x_sites"], margin_y=a["margin_y_sites"],
                                  min_separation=float(a["min_separation_sites"]),
                                  half_integer_centres=a["half_integer_centres"])
    columns = 2 * width if a["half_integer_centres"] else width
    enumeration = columns**2 * (2 * g["length_sites"] + 5)
    if enumeration > MAX_P2_ENUMERATION:
        raise ConfigError(f"{key}.geometry",
                          f"a {width} × {g['length_sites']}-site wire needs {enumeration:,} "
                          f"candidate antidot pairs to enumerate, more than {MAX_P2_ENUMERATION:,} "
                          "(memory); P2's 50 × 60 needs 312,500")
    image_sites = (2 * width + 2 * dataset["ldos_padding_sites"]) * g["length_sites"]
    _check_dataset_bytes(key, dataset, image_sites * _itemsize(dataset)
                         + 8 * dataset["transport"]["n_fields"])
    classes = count_classes(geometry, constraints)
    available = classes * dataset["disorder"]["realizations"]
    if classes == 0:
        raise ConfigError(f"{key}.antidots", "no antidot pair fits the wire with these "
                                             "constraints")
    if dataset["n_samples"] > available:
        raise ConfigError(f"{key}.n_samples",
                          f"{dataset['n_samples']} exceeds the {classes} antidot classes × "
                          f"{dataset['disorder']['realizations']} realisations = {available}")


def _check_p1_dataset(key, dataset):
    from .physics.qpc import QPCGeometry  # local import: keeps config loading light

    disorder = dataset["disorder"]
    _check_range(f"{key}.disorder.dopant_distance_nm", disorder["dopant_distance_nm"],
                 DOPANT_DISTANCE_BOUNDS_NM, "nm")
    _check_range(f"{key}.disorder.dopant_density_cm2", disorder["dopant_density_cm2"],
                 DOPANT_DENSITY_BOUNDS_CM2, "cm⁻²")
    fields = dataset["transport"]["magnetic_fields_T"]
    if len(set(fields)) != len(fields):
        raise ConfigError(f"{key}.transport.magnetic_fields_T", f"{fields} has duplicates")
    geometry = dataset["geometry"]
    a = geometry["lattice_constant_nm"]
    for name in ("length_nm", "width_nm", "qpc_width_nm"):
        sites = geometry[name] / a
        if abs(sites - round(sites)) > 1e-9 * max(1.0, sites) or round(sites) < 1:
            raise ConfigError(f"{key}.geometry.{name}",
                              f"{geometry[name]} nm is not a whole number of lattice constants "
                              f"({a} nm)")
    nx, ny = round(geometry["length_nm"] / a), round(geometry["width_nm"] / a)
    if nx * ny > MAX_SITES_PER_SAMPLE:
        raise ConfigError(f"{key}.geometry.lattice_constant_nm",
                          f"{geometry['length_nm']:g} × {geometry['width_nm']:g} nm at a = {a:g} nm "
                          f"is {nx:,} × {ny:,} = {nx * ny:,} sites per sample, more than the "
                          f"{MAX_SITES_PER_SAMPLE:,} one job can hold (P1 at paper scale: 49,152)")
    try:
        QPCGeometry.from_nm(**geometry)
    except ValueError as error:
        name = "qpc_center_nm" if geometry.get("qpc_center_nm") is not None else "qpc_width_nm"
        raise ConfigError(f"{key}.geometry.{name}", str(error)) from None
    energy = dataset["transport"]["energy_meV"]
    from .physics.materials import hopping_meV

    t = hopping_meV(a, dataset["material"]["effective_mass_kg"])
    if energy >= 4 * t:
        raise ConfigError(f"{key}.transport.energy_meV",
                          f"{energy} meV is above the band centre 4t = {4 * t:.1f} meV of the "
                          "lattice: the discretisation is meaningless there (use a smaller "
                          "lattice constant)")
    # Hard-wall QPC of w sites: first channel opens at 2t(1 - cos(π/(w+1))) (clean, B = 0).
    w = round(geometry["qpc_width_nm"] / a)
    threshold = 2 * t * (1 - math.cos(math.pi / (w + 1)))
    if energy <= threshold:
        raise ConfigError(f"{key}.transport.energy_meV",
                          f"{energy} meV is below the first channel of the {w}-site QPC "
                          f"({threshold:.2f} meV): no electron would be injected")
    disorder = dataset["disorder"]
    s_max = parameter_range(disorder["dopant_distance_nm"])[1]
    cutoff = disorder["cutoff_factor"] / s_max
    smallest_q = 2 * math.pi / max(geometry["length_nm"], geometry["width_nm"])
    if cutoff <= smallest_q:
        raise ConfigError(f"{key}.disorder.dopant_distance_nm",
                          f"at s = {s_max:g} nm the cutoff {cutoff:.4f} nm⁻¹ is below the "
                          f"smallest wave vector 2π/{max(geometry['length_nm'], geometry['width_nm']):g} "
                          "nm of the region: the potential would be zero (enlarge the region)")
    s_min = parameter_range(disorder["dopant_distance_nm"])[0]
    largest = disorder["cutoff_factor"] / s_min
    grid = ((math.floor(largest * geometry["length_nm"] / (2 * math.pi)) + 1)
            * (2 * math.floor(largest * geometry["width_nm"] / (2 * math.pi)) + 1))
    if grid > MAX_FOURIER_MODES:
        raise ConfigError(f"{key}.disorder.cutoff_factor",
                          f"cutoff {disorder['cutoff_factor']:g}/s at s = {s_min:g} nm spans "
                          f"{grid:,} Fourier modes of the region, more than {MAX_FOURIER_MODES:,} "
                          "(P1: 3.5, a few hundred modes)")
    n_fields = len(dataset["transport"]["magnetic_fields_T"])
    _check_dataset_bytes(key, dataset, nx * ny * (1 + n_fields) * _itemsize(dataset)
                         + 8 * grid + 64)


def _itemsize(dataset) -> int:
    return 8 if dataset.get("storage_dtype") == "float64" else 4


def _check_dataset_bytes(key, dataset, bytes_per_sample):
    total = bytes_per_sample * dataset["n_samples"]
    if total > MAX_DATASET_BYTES:
        raise ConfigError(f"{key}.n_samples",
                          f"{dataset['n_samples']:,} samples of ≈ {bytes_per_sample / 1e6:.3g} MB "
                          f"are ≈ {total / 1e12:.3g} TB of shards (and as much again in splits), "
                          f"more than {MAX_DATASET_BYTES / 1e12:.3g} TB")


#: Dataset kind each model kind trains on.
MODEL_DATASET_KINDS = {"p1_parameter_cnn": "p1_pldos", "p1_fourier_cnn": "p1_pldos",
                       "p1_encoder_decoder": "p1_pldos",
                       "p2_diffusion": "p2_magnetoconductance"}


def _check_diffusion_model(key, model, name, dataset):
    """P2: training needs a validation split and the evaluation its split; the U-Net a square
    image whose side halves cleanly at each downsampling."""
    if dataset["splits"]["val"] == 0:
        raise ConfigError(f"{key}.dataset", f"dataset '{name}' has no validation split "
                                           "(splits.val = 0): P2 models are evaluated on it")
    split = model.get("evaluation_split", "val")
    if dataset["splits"][split] == 0:
        raise ConfigError(f"{key}.evaluation_split",
                          f"dataset '{name}' has no {split} split (splits.{split} = 0)")
    geometry = dataset["geometry"]
    width = geometry["width_sites"] + 2 * dataset["ldos_padding_sites"]
    length = geometry["length_sites"]
    if width != length:
        raise ConfigError(f"{key}.dataset", f"the LDOS image of dataset '{name}' is {width} × "
                                           f"{length} (width_sites + 2 ldos_padding_sites × "
                                           "length_sites): the U-Net needs a square image")
    levels = len(model["architecture"].get("channel_mults", (1, 2, 4)))
    factor = 2 ** (levels - 1)
    if length % factor:
        raise ConfigError(f"{key}.architecture.channel_mults",
                          f"{levels} levels halve the image {levels - 1} times: its side "
                          f"{length} is not divisible by {factor}")


def _check_p1_network(key, model, name, dataset):
    """P1 networks: odd kernels ('same' padding); a map large enough for the poolings; the
    Fourier CNN's BatchNorm needs at least two samples per batch."""
    architecture = model["architecture"]
    for kernel in ("kernel_size", "first_kernel_size"):
        if kernel in architecture and architecture[kernel] % 2 == 0:
            raise ConfigError(f"{key}.architecture.{kernel}",
                              f"{architecture[kernel]} is even: kernels must be odd ('same' "
                              "padding keeps the map size)")
    if model["kind"] in ("p1_parameter_cnn", "p1_fourier_cnn"):
        geometry = dataset["geometry"]
        a = geometry["lattice_constant_nm"]
        sites = min(round(geometry["length_nm"] / a), round(geometry["width_nm"] / a))
        blocks = len(architecture["conv_channels"])
        if sites < 2 ** blocks:
            raise ConfigError(f"{key}.architecture.conv_channels",
                              f"{blocks} 2× poolings need maps of at least {2 ** blocks} sites; "
                              f"dataset '{name}' has {sites}")
    if model["kind"] == "p1_fourier_cnn" and model["batch_size"] < 2:
        raise ConfigError(f"{key}.batch_size", "the Fourier CNN's BatchNorm needs at least 2 "
                                               "samples per batch")


def _check_model(key, model, datasets):
    """What the schema cannot check of a model entry: its dataset, fields and augmentation."""
    name = model["dataset"]
    if name not in datasets:
        raise ConfigError(f"{key}.dataset", f"no dataset '{name}' (known: "
                                           f"{', '.join(sorted(datasets))})")
    dataset = datasets[name]
    wanted = MODEL_DATASET_KINDS[model["kind"]]
    if dataset["kind"] != wanted:
        raise ConfigError(f"{key}.dataset", f"a {model['kind']} model trains on a {wanted} "
                                           f"dataset; '{name}' is {dataset['kind']}")
    if model["kind"] == "p2_diffusion":
        _check_diffusion_model(key, model, name, dataset)
        return
    _check_p1_network(key, model, name, dataset)
    distance = dataset["disorder"]["dopant_distance_nm"]
    if model["kind"] == "p1_fourier_cnn" and isinstance(distance, list) and \
            distance[0] != distance[-1]:
        raise ConfigError(f"{key}.dataset", f"a p1_fourier_cnn rebuilds V(x, y) with Eq. (1) at "
                                           f"one dopant distance s; dataset '{name}' draws s in "
                                           f"{distance} nm (use a fixed dopant_distance_nm)")
    subset = model.get("train_subset")
    if subset is not None and subset["n_samples"] > dataset["n_samples"]:
        raise ConfigError(f"{key}.train_subset.n_samples",
                          f"{subset['n_samples']} training samples asked for; dataset '{name}' "
                          f"has {dataset['n_samples']} samples in all splits together")
    if dataset["splits"]["val"] == 0 and model["early_stopping"] is not None:
        raise ConfigError(f"{key}.early_stopping", f"dataset '{name}' has no validation split "
                                                   "to stop on (splits.val = 0)")
    stored = [float(f) for f in dataset["transport"]["magnetic_fields_T"]]
    fields = model["inputs"]["fields_T"]
    if fields is not None:
        missing = [f for f in fields if float(f) not in stored]
        if missing:
            raise ConfigError(f"{key}.inputs.fields_T", f"{missing} T not among the fields "
                                                        f"{stored} T of dataset '{name}'")
        if len(set(fields)) != len(fields):
            raise ConfigError(f"{key}.inputs.fields_T", f"{fields} has duplicates")
    if model["inputs"]["mirror_augmentation"]:
        used = stored if fields is None else [float(f) for f in fields]
        if any(f != 0 for f in used):
            raise ConfigError(f"{key}.inputs.mirror_augmentation",
                              f"y -> -y is a symmetry only at B = 0; input fields are {used} T")
        geometry = dataset["geometry"]
        a = geometry["lattice_constant_nm"]
        ny, w = round(geometry["width_nm"] / a), round(geometry["qpc_width_nm"] / a)
        centre = geometry.get("qpc_center_nm")
        from .physics.qpc import QPCGeometry  # local import: keeps config loading light

        first_y = QPCGeometry.from_nm(**geometry).qpc_first_y
        if 2 * first_y + w != ny:
            raise ConfigError(f"{key}.inputs.mirror_augmentation",
                              f"the QPC of dataset '{name}' is not centred (qpc_center_nm = "
                              f"{centre}): y -> -y is no symmetry of the device")


def check_duplicate_keys(text: str, source: str = "the config") -> None:
    """Refuse a key given twice in one YAML (or JSON) mapping.

    PyYAML, and Snakemake's config loader, silently keep the last of two equal keys (a repeated
    ``seed``, a dataset name used twice): the first entry would vanish without a word. Keys
    brought in by a merge key (``<<: *anchor``) may be overridden, as YAML intends.

    Raises
    ------
    ConfigError
        Naming the key's dotted path and both line numbers.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # the loader reports it, with its position
    visited = set()

    def walk(node, path):
        if id(node) in visited:  # an alias: already checked where its anchor is
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    walk(value_node, path)
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key in lines:
                    raise ConfigError(_key([*path, key]),
                                      f"given twice in {source} (lines {lines[key]} and {line}); "
                                      "YAML would silently keep the last: remove one")
                lines[key] = line
                walk(value_node, [*path, key])
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, [*path, index])

    if root is not None:
        walk(root, [])


def check_config_file(path) -> None:
    """What a dict cannot show of a config file: duplicate keys (see
    :func:`check_duplicate_keys`). The Snakefile calls it on every ``--configfile``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError("<file>", f"{path} does not exist or is not a file") from None
    check_duplicate_keys(text, str(path))


def load_config(path) -> dict:
    """Read a YAML configuration file and validate it (see :func:`validate_config`)."""
    path = Path(path)
    check_config_file(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError("<file>", f"{path} is not valid YAML: {error}") from None
    return validate_config(config)


def dataset_definition(config: dict, name: str) -> dict:
    """The sample-defining part of dataset ``name``: its entry without n_samples, shard_size.

    The workflow writes it to ``results/datasets/<name>/definition.json``; shards depend on
    that file, so growing a dataset (n_samples) or re-sharding it reruns no existing sample.
    """
    try:
        entry = config["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(config["datasets"]))
        raise ConfigError(f"datasets.{name}", f"no such dataset (known: {known})") from None
    definition = {k: v for k, v in entry.items() if k not in NON_SAMPLE_KEYS}
    definition["name"] = name
    return definition


def sample_config_hash(dataset: dict) -> str:
    """sha256 of everything in a dataset entry that determines its samples' content.

    ``n_samples`` and ``shard_size`` are left out: growing a dataset or re-sharding it keeps
    every existing sample, and its shards still share one hash.
    """
    relevant = {k: v for k, v in dataset.items() if k not in NON_SAMPLE_KEYS + ("name",)}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# Sweeps and seed replicates live in their own module (below this one's definitions, which it
# imports); re-exported here so that ``mesoinv.config`` stays the one entry point.
from .config_sweeps import (SELECTION_METRICS, SWEEP_MODEL_KINDS, expand_replicates,  # noqa: E402
                            expand_sweeps, replicate_groups, sweep_points, sweep_selection)
