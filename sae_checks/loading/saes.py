"""Load SAEs (any sae_lens architecture) and check that they fit the model.

``spec`` is one of:

- ``zoo:v1`` / ``zoo:v2``: the embedded zoo's SAEs (a folder of per-layer SAE folders);
- a sae_lens pretrained release name (``gpt2-small-res-jb``): ``SAE.from_pretrained(release, id)`` for
  every ``id = sae_id.format(layer=L)``; with ``layers=None``, every layer of the model whose id the
  release lists;
- a local SAE folder in sae_lens format (``cfg.json`` + ``sae_weights.safetensors``, written by
  ``sae.save_model``), or a folder of such folders (one per layer).

The layer of a local SAE is parsed from its ``hook_name`` metadata (``blocks.L.…``). Every SAE is checked:
``d_in`` equals the model's ``d_model``, ``hook_name`` is a hook of the model, and the SAE's
``model_name`` names the same model (a warning only, since renamed models are common).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sae_checks.errors import CompatibilityError, LoadError, OfflineError
from sae_checks.loading import cached_file, hub_offline

__all__ = ["DEFAULT_SAE_ID", "LoadedSAE", "check_sae_cfg", "load_saes", "sha256_file"]

DEFAULT_SAE_ID = "blocks.{layer}.hook_resid_pre"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
_LAYER_RE = re.compile(r"^blocks\.(\d+)\.")


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


def load_saes(
    spec: str, model: Any, *, sae_id: str = DEFAULT_SAE_ID, layers: Sequence[int] | None = None,
    device: str = "cpu",
) -> dict[int, LoadedSAE]:
    """SAEs for ``model`` keyed by layer, sorted by layer (see the module docstring for ``spec``).

    Raises ``LoadError`` (unknown spec, missing/corrupt files), ``OfflineError`` (a release not in the
    Hugging Face cache while offline), ``CompatibilityError`` (d_in, hook name, a requested layer
    without an SAE). Warns when the SAE's ``model_name`` differs from the model's name.
    """
    if spec.startswith("zoo:"):
        from sae_checks.zoo import zoo_sae_dir

        version = spec.split(":", 1)[1]
        try:
            folder = Path(zoo_sae_dir(version))
        except (KeyError, ValueError) as err:
            raise LoadError(f"SAEs {spec!r}: unknown zoo version {version!r} (use zoo:v1 or zoo:v2): {err}") from err
        except FileNotFoundError as err:  # zoo files not built
            raise LoadError(f"SAEs {spec!r}: {err}") from err
        found = _load_local(folder, model, sae_id=sae_id, device=device, release=spec)
    elif Path(spec).expanduser().exists():
        found = _load_local(Path(spec).expanduser(), model, sae_id=sae_id, device=device, release=None)
    else:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

        directory = get_pretrained_saes_directory()
        if spec not in directory:
            import difflib

            close = difflib.get_close_matches(spec, list(directory), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise LoadError(
                f"SAEs {spec!r}: not zoo:v1/zoo:v2, not an existing local folder, and not a sae_lens pretrained "
                f"release{hint}; releases are listed by "
                "sae_lens.loading.pretrained_saes_directory.get_pretrained_saes_directory()"
            )
        return _load_release(spec, directory[spec], model, sae_id=sae_id, layers=layers, device=device)

    if layers is not None:
        missing = [layer for layer in layers if layer not in found]
        if missing:
            raise CompatibilityError(
                f"SAEs {spec!r}: no SAE for requested layer(s) {missing}; layers with an SAE: {sorted(found)}"
            )
        found = {layer: found[layer] for layer in layers}
    return dict(sorted(found.items()))


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- local folders ---------------------------------------------------------------------------------


def _load_local(folder: Path, model: Any, *, sae_id: str, device: str, release: str | None) -> dict[int, LoadedSAE]:
    """One SAE folder, or a folder of SAE folders (any subfolder holding a cfg.json)."""
    if (folder / CFG_FILE).is_file() or (folder / WEIGHTS_FILE).is_file():
        loaded = _load_folder(folder, model, device=device, release=release)
        return {loaded.layer: loaded}
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and (p / CFG_FILE).is_file())
    if not subfolders:
        raise LoadError(
            f"SAE folder {folder}: no {CFG_FILE} here and no subfolder with one; expected a sae_lens SAE folder "
            f"({CFG_FILE} + {WEIGHTS_FILE}, written by sae.save_model) or a folder of such folders"
        )
    found: dict[int, LoadedSAE] = {}
    for sub in subfolders:
        loaded = _load_folder(sub, model, device=device, release=release)
        other = found.get(loaded.layer)
        if other is not None:
            wanted = sae_id.format(layer=loaded.layer)
            if (other.hook_name == wanted) == (loaded.hook_name == wanted):
                raise LoadError(
                    f"SAE folder {folder}: two SAEs for layer {loaded.layer} ({other.path}: {other.hook_name}, "
                    f"{sub}: {loaded.hook_name}); keep one, or pick one with --sae-id"
                )
            if other.hook_name == wanted:
                continue
        found[loaded.layer] = loaded
    return found


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
        d_sae=sae.cfg.d_sae, model_name=meta.model_name, neuronpedia_id=meta.neuronpedia_id,
    )
    _check_fits(loaded, model, where)
    return loaded


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


def _load_release(
    release: str, lookup: Any, model: Any, *, sae_id: str, layers: Sequence[int] | None, device: str
) -> dict[int, LoadedSAE]:
    ids = list(lookup.saes_map)
    shown = ", ".join(ids[:6]) + (", …" if len(ids) > 6 else "")
    if layers is None:
        layers = [layer for layer in range(model.cfg.n_layers) if sae_id.format(layer=layer) in lookup.saes_map]
        if not layers:
            raise CompatibilityError(
                f"release {release!r}: no id matches {sae_id!r} for any layer 0..{model.cfg.n_layers - 1} of the "
                f"model (ids: {shown}); pass --sae-id with a {{layer}} template"
            )
    out: dict[int, LoadedSAE] = {}
    for layer in layers:
        filled = sae_id.format(layer=layer)
        if filled not in lookup.saes_map:
            raise CompatibilityError(
                f"release {release!r} has no SAE {filled!r} for requested layer {layer} (ids: {shown})"
            )
        out[layer] = _load_release_sae(release, filled, lookup, model, device=device)
    return dict(sorted(out.items()))


def _load_release_sae(release: str, sae_id: str, lookup: Any, model: Any, *, device: str) -> LoadedSAE:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    resource = f"SAE {release!r} / {sae_id!r} (Hugging Face repo {repo_id!r}, folder {folder!r})"
    fix = ("pass a local SAE folder (cfg.json + sae_weights.safetensors) instead, or fill the Hugging Face cache "
           f"with SAE.from_pretrained({release!r}, {sae_id!r}) on a machine with network access and copy it "
           "here (HF_HOME / HF_HUB_CACHE)")
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
        neuronpedia_id=(lookup.neuronpedia_id or {}).get(sae_id) or meta.neuronpedia_id,
    )
    _check_fits(loaded, model, where)
    return loaded


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
    from sae_checks.loading.models import same_model

    model_name = model.cfg.model_name
    if loaded.d_in != model.cfg.d_model:
        raise CompatibilityError(
            f"SAE {where}: d_in={loaded.d_in} but model {model_name!r} has d_model={model.cfg.d_model}"
        )
    if loaded.hook_name not in model.hook_dict:
        raise CompatibilityError(
            f"SAE {where}: hook_name {loaded.hook_name!r} is not a hook of model {model_name!r} "
            f"(it has {model.cfg.n_layers} blocks; e.g. blocks.0.hook_resid_pre)"
        )
    if not same_model(loaded.model_name, model_name):
        warnings.warn(
            f"SAE {where} was trained on model {loaded.model_name!r} but is being checked on {model_name!r}",
            UserWarning, stacklevel=3,
        )


def _layer_of(hook_name: str | None, where: str) -> int:
    match = _LAYER_RE.match(hook_name or "")
    if match is None:
        raise LoadError(f"SAE {where}: cannot tell its layer from hook_name {hook_name!r} (expected blocks.L.…)")
    return int(match.group(1))


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
