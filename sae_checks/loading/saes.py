"""Load SAEs (any sae_lens architecture, any supported hook) and check that they fit the model.

``spec`` names one or more SAE sources, separated by commas; each is one of:

- ``zoo:v1`` / ``zoo:v2`` / ``zoo:suite`` / ``zoo:arch``: the embedded zoo's SAEs (a folder of SAE folders);
- a sae_lens pretrained release name (``gpt2-small-res-jb``): ``SAE.from_pretrained(release, id)`` for every
  id the release lists that ``ids`` selects (a regular expression or a shell glob matching the whole id),
  or, without ``ids``, every id the template ``sae_id`` gives for a layer of the model;
- a local SAE folder in sae_lens format (``cfg.json`` + ``sae_weights.safetensors``, written by
  ``sae.save_model``), or a folder of such folders (any number per layer or hook).

Every SAE gets a stable **name** (its release id or folder name) that keys its results, checks and
baselines; layer and hook are fields. Every SAE is checked before any forward pass: its ``hook_name`` is a
hook sae-checks can splice (``sae_checks.names.HOOK_KINDS``) and a hook of the model, ``d_in`` equals the
activation width there (``d_model``, ``n_heads * d_head`` for ``attn.hook_z``, ``d_mlp`` for
``mlp.hook_post``), and the SAE's ``model_name`` names the same model (a warning only, since renamed
models are common). ``hook_z`` SAEs are evaluated on the flattened (B, T, H * d_head) activation, the
convention of sae_lens' training and ``run_evals``; the SAE's own forward-pass reshaping is turned off.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sae_checks.errors import CompatibilityError, ConfigError, LoadError, OfflineError
from sae_checks.loading import cached_file, hub_offline
from sae_checks.names import hook_layer, hook_site, hook_width, sae_sort_key, supported_hooks_text

__all__ = ["DEFAULT_SAE_ID", "LoadedSAE", "check_sae_cfg", "id_matcher", "load_saes", "sha256_file",
           "split_sources"]

DEFAULT_SAE_ID = "blocks.{layer}.hook_resid_pre"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"


class LoadedSAE(NamedTuple):
    """One SAE with its provenance, as recorded in the report's ``provenance.saes``."""

    sae: Any  # the sae_lens SAE, eval mode, on the requested device
    layer: int  # block index L of its hook (blocks.L.…)
    hook_name: str  # TransformerLens hook it reads and splices, e.g. "blocks.3.hook_resid_pre"
    release: str | None  # sae_lens release or "zoo:v2"; None for a local folder
    sae_id: str | None  # id inside the release (the filled template); None for a local folder
    path: str  # local weights folder, or the cached weights file of a release
    sha256: str  # of the weights file's bytes ("" when the file could not be located)
    context_size: int | None  # training context (tokens) from metadata; None when unknown
    architecture: str  # "standard", "topk", "jumprelu", "gated", …
    d_in: int
    d_sae: int
    model_name: str | None  # model the SAE was trained on (metadata)
    neuronpedia_id: str | None  # from the pretrained directory when listed
    name: str = ""  # stable name: release id or folder name (keys results, check ids, baselines)
    nonfinite_params: tuple[dict[str, Any], ...] = ()  # {"tensor", "index", "count"} per tensor with NaN/inf


def split_sources(spec: str) -> list[str]:
    """``"zoo:v2, zoo:suite"`` -> ``["zoo:v2", "zoo:suite"]`` (sources are separated by commas)."""
    from sae_checks.config import split_list

    return list(split_list(spec))


def id_matcher(pattern: str | None) -> Any:
    """A predicate over SAE ids/names: True when ``pattern`` matches the whole id as a regular expression
    or as a shell glob (``blocks\\.[0-9]+\\.hook_resid_pre`` and ``blocks.*.hook_resid_pre`` both work);
    None matches everything."""
    if pattern is None:
        return lambda name: True
    try:
        regex: re.Pattern[str] | None = re.compile(pattern)
    except re.error:
        regex = None
    return lambda name: bool((regex is not None and regex.fullmatch(name)) or fnmatch.fnmatchcase(name, pattern))


def load_saes(
    spec: str, model: Any, *, sae_id: str = DEFAULT_SAE_ID, layers: Sequence[int] | None = None,
    device: str = "cpu", ids: str | None = None, names: Sequence[str] | None = None,
) -> dict[str, LoadedSAE]:
    """SAEs for ``model`` keyed by name, in forward order (see the module docstring for ``spec``).

    ``ids``: a regex/glob over release ids and folder names; ``layers``: keep the SAEs at these layers;
    ``names``: keep exactly these SAEs (a run's share of a planned suite). Raises ``LoadError`` (unknown
    spec, missing/corrupt files, two SAEs with one name), ``OfflineError`` (a release not in the Hugging
    Face cache while offline), ``CompatibilityError`` (hook, d_in, a requested layer or name without an
    SAE). Warns when the SAE's ``model_name`` differs from the model's name.
    """
    found: dict[str, LoadedSAE] = {}
    keep = id_matcher(ids)
    for source in split_sources(spec):
        for loaded in _load_source(source, model, sae_id=sae_id, ids=ids, layers=layers, device=device,
                                   names=names):
            if layers is not None and loaded.layer not in layers:
                continue
            if not keep(loaded.name) or (names is not None and loaded.name not in names):
                continue
            if loaded.name in found:
                first = found[loaded.name]
                if first.release and loaded.release and first.release != loaded.release:
                    raise LoadError(
                        f"SAEs {spec!r}: releases {first.release!r} and {loaded.release!r} both have an SAE "
                        f"{loaded.name!r}, and an SAE's name (its id) keys its results, checks and baseline; gate "
                        "these releases in separate runs, or narrow --sae-ids so that each id comes from one")
                raise LoadError(f"SAEs {spec!r}: two SAEs are named {loaded.name!r} ({first.path} and "
                                f"{loaded.path}); rename a folder or drop a source")
            found[loaded.name] = loaded
    if not split_sources(spec):
        raise ConfigError("saes", spec, "names no SAE source")
    _check_requested(spec, found, layers=layers, names=names, ids=ids)
    return dict(sorted(found.items(), key=lambda kv: sae_sort_key(kv[1].layer, kv[1].hook_name, kv[0])))


def _check_requested(spec: str, found: dict[str, LoadedSAE], *, layers: Sequence[int] | None,
                     names: Sequence[str] | None, ids: str | None) -> None:
    if layers is not None:
        missing = sorted(set(layers) - {s.layer for s in found.values()})
        if missing:
            raise CompatibilityError(f"SAEs {spec!r}: no SAE for requested layer(s) {missing}; layers with an SAE: "
                                     f"{sorted({s.layer for s in found.values()})}")
    if names is not None:
        missing_names = sorted(set(names) - set(found))
        if missing_names:
            raise CompatibilityError(f"SAEs {spec!r}: no SAE named {missing_names}")
    if not found:
        raise CompatibilityError(f"SAEs {spec!r}: no SAE selected" + (f" by --sae-ids {ids!r}" if ids else ""))


def source_folder(source: str) -> Path | None:
    """The local folder an SAE source names (``zoo:v2`` or an existing path), None for a release name."""
    if source.startswith("zoo:"):
        from sae_checks.zoo import zoo_sae_dir

        version = source.split(":", 1)[1]
        try:
            return Path(zoo_sae_dir(version))
        except (KeyError, ValueError) as err:
            raise LoadError(f"SAEs {source!r}: unknown zoo version {version!r}: {err}") from err
        except FileNotFoundError as err:  # zoo files not built
            raise LoadError(f"SAEs {source!r}: {err}") from err
    path = Path(source).expanduser()
    return path if path.exists() else None


def _load_source(source: str, model: Any, *, sae_id: str, ids: str | None, layers: Sequence[int] | None,
                 device: str, names: Sequence[str] | None) -> list[LoadedSAE]:
    folder = source_folder(source)
    if folder is not None:
        release = source if source.startswith("zoo:") else None
        return _load_local(folder, model, device=device, release=release, names=names)
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if source not in directory:
        import difflib

        close = difflib.get_close_matches(source, list(directory), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LoadError(
            f"SAEs {source!r}: not zoo:v1/zoo:v2/zoo:suite/zoo:arch, not an existing local folder, and not a sae_lens "
            f"pretrained release{hint}; releases are listed by "
            "sae_lens.loading.pretrained_saes_directory.get_pretrained_saes_directory()"
        )
    wanted = release_ids(source, directory[source], n_layers=model.cfg.n_layers, sae_id=sae_id, ids=ids,
                         layers=layers)
    if names is not None:
        wanted = [w for w in wanted if w in names]
    return [_load_release_sae(source, w, directory[source], model, device=device) for w in wanted]


def release_ids(release: str, lookup: Any, *, n_layers: int | None, sae_id: str, ids: str | None,
                layers: Sequence[int] | None) -> list[str]:
    """The ids of a release a run selects: those ``ids`` matches, else the template filled per layer."""
    all_ids = list(lookup.saes_map)
    shown = ", ".join(all_ids[:6]) + (", …" if len(all_ids) > 6 else "")
    if ids is not None:
        match = id_matcher(ids)
        out = [i for i in all_ids if match(i)]
        if not out:
            raise CompatibilityError(f"release {release!r}: no id matches --sae-ids {ids!r} (ids: {shown})")
        return out
    candidates = layers if layers is not None else range(n_layers if n_layers is not None else 1000)
    out = [sae_id.format(layer=layer) for layer in candidates if sae_id.format(layer=layer) in lookup.saes_map]
    if layers is not None:
        missing = [layer for layer in layers if sae_id.format(layer=layer) not in lookup.saes_map]
        if missing:
            raise CompatibilityError(f"release {release!r} has no SAE {sae_id.format(layer=missing[0])!r} for "
                                     f"requested layer {missing[0]} (ids: {shown})")
    if not out:
        raise CompatibilityError(
            f"release {release!r}: no id matches {sae_id!r} for any layer of the model (ids: {shown}); pass "
            "--sae-id with a {layer} template or --sae-ids with a regex/glob over the ids"
        )
    return out


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- local folders ---------------------------------------------------------------------------------


def _load_local(folder: Path, model: Any, *, device: str, release: str | None,
                names: Sequence[str] | None = None) -> list[LoadedSAE]:
    """One SAE folder, or a folder of SAE folders (any subfolder holding a cfg.json), in name order."""
    if (folder / CFG_FILE).is_file() or (folder / WEIGHTS_FILE).is_file():
        return [_load_folder(folder, model, device=device, release=release)]
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and (p / CFG_FILE).is_file())
    if not subfolders:
        raise LoadError(
            f"SAE folder {folder}: no {CFG_FILE} here and no subfolder with one; expected a sae_lens SAE folder "
            f"({CFG_FILE} + {WEIGHTS_FILE}, written by sae.save_model) or a folder of such folders"
        )
    return [_load_folder(sub, model, device=device, release=release) for sub in subfolders
            if names is None or sub.name in names]


def _load_folder(folder: Path, model: Any, *, device: str, release: str | None) -> LoadedSAE:
    from sae_lens import SAE

    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    for needed in (cfg_path, weights_path):
        if not needed.is_file():
            raise LoadError(f"SAE folder {folder}: missing file {needed}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise LoadError(f"SAE {folder}: cannot read {cfg_path}: {_one_line(err)}") from err
    check_sae_cfg(cfg, cfg_path)
    try:
        sae = SAE.load_from_disk(str(folder), device=device)
    except Exception as err:  # corrupt safetensors / wrong tensors: name the file, keep the cause
        raise LoadError(f"SAE {folder}: cannot load {weights_path}: {_one_line(err)}") from err
    meta = sae.cfg.metadata
    where = str(folder)
    layer = _layer_of(meta.hook_name, where)
    loaded = LoadedSAE(
        sae=sae.eval(), layer=layer, hook_name=meta.hook_name,
        release=release, sae_id=folder.name if release else None, path=where, sha256=sha256_file(weights_path),
        context_size=meta.context_size, architecture=sae.cfg.architecture(), d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae, model_name=meta.model_name, neuronpedia_id=meta.neuronpedia_id, name=folder.name,
    )
    _check_fits(loaded, model, where)
    return _check_weights(loaded)


# cfg.json keys sae-checks reads (top level, or inside "metadata" for sae_lens >= 6), with their types:
# checked before sae_lens loads the folder, which would crash later or blame the weights file.
_CFG_TYPES: dict[str, tuple[type, ...]] = {
    "d_in": (int,), "d_sae": (int,), "hook_name": (str,), "context_size": (int, type(None)),
    "hook_head_index": (int, type(None)), "model_name": (str, type(None)), "architecture": (str,),
    "dtype": (str,),
}
_CFG_WORDS = {int: "an integer", str: "a string", type(None): "null"}


def check_sae_cfg(cfg: Any, path: Path) -> None:
    """Raise LoadError naming ``path`` and the key when an SAE's ``cfg.json`` holds a value of the wrong
    type (``"d_sae": "512"``, ``"hook_name": 5``; bool is not an integer) or a size below 1."""
    if not isinstance(cfg, dict):
        raise LoadError(f"{path}: an SAE config is a JSON object, found {type(cfg).__name__}")
    meta = cfg.get("metadata", {})
    if not isinstance(meta, dict):
        raise LoadError(f"{path}: key 'metadata' must be an object, got {meta!r}")
    located = [(k, v) for k, v in cfg.items()] + [(f"metadata.{k}", v) for k, v in meta.items()]
    for key, value in located:
        kinds = _CFG_TYPES.get(key.removeprefix("metadata."))
        if kinds is None:
            continue
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        if not ok or (key in ("d_in", "d_sae") and value < 1):
            want = " or ".join(_CFG_WORDS[k] for k in kinds) + (" >= 1" if ok else "")
            raise LoadError(f"{path}: key {key!r} must be {want}, got {value!r}; fix the value in this file "
                            "(e.g. a number without quotes)")


# --- pretrained releases ---------------------------------------------------------------------------


def _load_release_sae(release: str, sae_id: str, lookup: Any, model: Any, *, device: str) -> LoadedSAE:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    resource = f"SAE {release!r} / {sae_id!r} (Hugging Face repo {repo_id!r}, folder {folder!r})"
    fix = ("pass a local SAE folder (cfg.json + sae_weights.safetensors) instead, or fill the Hugging Face cache "
           f"with SAE.from_pretrained({release!r}, {sae_id!r}) on a machine with network access and copy it "
           "here (HF_HOME / HF_HUB_CACHE)")
    _check_release_hook(release, sae_id)
    offline = hub_offline()
    weights = _cached_weights(repo_id, folder)
    if offline and weights is None:
        raise OfflineError(resource, fix)
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except OSError as err:  # LocalEntryNotFoundError, OfflineModeIsEnabled, connection errors
        if offline:
            raise OfflineError(resource, f"{fix}; {_one_line(err)}") from err
        raise LoadError(f"{resource}: cannot load: {_one_line(err)}") from err
    except Exception as err:  # corrupt cached files
        raise LoadError(f"{resource}: cannot load {weights or folder}: {_one_line(err)}") from err
    weights = weights or _cached_weights(repo_id, folder)  # downloaded just now
    meta = sae.cfg.metadata
    hook_name = meta.hook_name or sae_id
    where = f"{release}/{sae_id}"
    loaded = LoadedSAE(
        sae=sae.eval(), layer=_layer_of(hook_name, where), hook_name=hook_name, release=release, sae_id=sae_id,
        path=weights or f"hf://{repo_id}/{folder}", sha256=sha256_file(weights) if weights else "",
        context_size=meta.context_size, architecture=sae.cfg.architecture(), d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae, model_name=meta.model_name or lookup.model,
        neuronpedia_id=(lookup.neuronpedia_id or {}).get(sae_id) or meta.neuronpedia_id, name=sae_id,
    )
    _check_fits(loaded, model, where)
    return _check_weights(loaded)


def _check_release_hook(release: str, sae_id: str) -> None:
    """Refuse, before any weights load, an SAE whose release config names a hook sae-checks cannot splice
    (Gemma Scope's ``embedding/...`` SAEs read ``hook_embed``). The config comes from sae_lens' config
    getter for the release's loader (a small file, or nothing: ``gemma_2`` builds it from the names); when
    it cannot be read (not cached offline) the loading path below reports that instead."""
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface

    try:
        cfg = load_sae_config_from_huggingface(release, sae_id)
    except Exception:  # not cached, offline, unreadable: the weights path below names the problem
        return
    hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name")
    if isinstance(hook, str) and hook_site(hook) is None:
        raise CompatibilityError(
            f"SAE {release!r} / {sae_id!r}: hook {hook!r} (from the release's config) cannot be spliced by "
            f"sae-checks (supported: {supported_hooks_text()}); nothing was loaded. Select other ids of the "
            "release with --sae-ids"
        )


def _cached_weights(repo_id: str, folder: str) -> str | None:
    """The cached weights file of a release SAE: sae_lens' own layout first, then the other loaders'."""
    folder = folder.strip("/")
    candidates = [f"{folder}/{WEIGHTS_FILE}", f"{folder}/params.safetensors", f"{folder}/params.npz",
                  f"{folder}/ae.pt", folder]
    for name in candidates:
        path = cached_file(repo_id, name)
        if path is not None and Path(path).is_file():
            return path
    return None


# --- checks ----------------------------------------------------------------------------------------


def _check_fits(loaded: LoadedSAE, model: Any, where: str) -> None:
    """Hook supported and present, d_in equal to the activation width there; hook_z reshaping off."""
    from sae_checks.loading.models import same_model

    model_name = model.cfg.model_name
    site = hook_site(loaded.hook_name)
    if site is None:
        raise CompatibilityError(f"SAE {where}: hook {loaded.hook_name!r} cannot be spliced by sae-checks "
                                 f"(supported: {supported_hooks_text()})")
    if loaded.hook_name not in model.hook_dict:
        raise CompatibilityError(
            f"SAE {where}: hook_name {loaded.hook_name!r} is not a hook of model {model_name!r} "
            f"(it has {model.cfg.n_layers} blocks; e.g. blocks.0.hook_resid_pre)"
        )
    width = hook_width(model.cfg, site.kind)
    if loaded.d_in != width:
        raise CompatibilityError(
            f"SAE {where}: d_in={loaded.d_in} but the activation at {loaded.hook_name} of model {model_name!r} "
            f"has width {width}"
        )
    if site.kind == "attn.hook_z" and hasattr(loaded.sae, "turn_off_forward_pass_hook_z_reshaping"):
        loaded.sae.turn_off_forward_pass_hook_z_reshaping()  # the engine flattens (B, T, H, d_head) itself
    if not same_model(loaded.model_name, model_name):
        warnings.warn(
            f"SAE {where} was trained on model {loaded.model_name!r} but is being checked on {model_name!r}",
            UserWarning, stacklevel=3,
        )


def nonfinite_params(sae: Any) -> list[dict[str, Any]]:
    """``{"tensor", "index", "count"}`` for every parameter or buffer of ``sae`` holding NaN/inf: its name
    (``W_dec``), the index of its first non-finite value and how many there are."""
    import torch

    out = []
    for tensor_name, t in sae.state_dict().items():
        if not torch.is_floating_point(t):
            continue
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            first = [int(i) for i in bad.nonzero()[0].tolist()]
            out.append({"tensor": tensor_name, "index": first, "count": int(bad.sum())})
    return out


def _check_weights(loaded: LoadedSAE) -> LoadedSAE:
    """Warn, naming the SAE, the tensor and its first bad index, when a weight is NaN/inf; the run goes on
    (it measures what it can) and records them (``nonfinite_params``), and every check of the SAE fails
    (the engine adds a ``results.nonfinite`` entry with ``where="weights"``)."""
    bad = nonfinite_params(loaded.sae)
    if not bad:
        return loaded
    for b in bad:
        warnings.warn(f"SAE {loaded.name}: non-finite values in {b['tensor']} (first at index {tuple(b['index'])}, "
                      f"{b['count']} in all); every check of this SAE will fail", UserWarning, stacklevel=4)
    return loaded._replace(nonfinite_params=tuple(bad))


def _layer_of(hook_name: str | None, where: str) -> int:
    layer = hook_layer(hook_name)
    if layer is None:
        raise LoadError(f"SAE {where}: cannot tell its layer from hook_name {hook_name!r} (expected blocks.L.…)")
    return layer


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
