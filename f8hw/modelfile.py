"""The f8hw integer model file: save_model / load_model.

Format (docs/ir.md): torch.save of
``{"format": "f8hw-model", "version": 1 or 2, "graph": graph_to_state(graph), "meta": {...}}``
holding only primitives and torch tensors.  Version 2 marks a graph with an
FP8 tensor/weight or a 64-bit output, so that an older f8hw refuses it instead
of reading FP8 codes as integers; INT8 graphs are still written as version 1.  Loading uses
``torch.load(path, weights_only=True)`` only, so a file carrying a pickle that
would execute code is refused before anything in it runs.
"""

from __future__ import annotations

import os

from f8hw.errors import F8Error, ModelFileError
from f8hw.ir import Graph, graph_from_state, graph_to_state, uses_v2

FORMAT = "f8hw-model"
VERSION = 2
"""The newest model file version; every version in VERSIONS loads."""
VERSIONS = (1, 2)


def save_model(graph: Graph, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Validate graph and write it (with meta: primitives only) to path."""
    import torch

    try:
        graph.validate()
    except F8Error as e:
        raise ModelFileError(f"{path}: refusing to save an invalid graph: {e}") from None
    state = {"format": FORMAT, "version": VERSION if uses_v2(graph) else 1, "graph": graph_to_state(graph), "meta": dict(meta or {})}
    try:
        torch.save(state, path)
    except (OSError, RuntimeError) as e:  # torch reports a missing directory as RuntimeError
        raise ModelFileError(f"{path}: cannot write: {getattr(e, 'strerror', None) or e}") from None


def load_model(path: str | os.PathLike) -> tuple[Graph, dict]:
    """Load and validate a model file; returns (graph, meta). ModelFileError names the file."""
    import pickle
    import warnings

    import torch

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        why = [ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln]
        raise ModelFileError(
            f"{path}: refused: the file holds pickled objects other than plain data and tensors "
            f"(loading it could execute code){': ' + why[0] if why else ''}"
        ) from None
    except Exception as e:  # torch raises RuntimeError/EOFError/IndexError/... for non-torch files
        raise ModelFileError(f"{path}: not a torch model file ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an f8hw model file (expected format {FORMAT!r})")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in VERSIONS:
        raise ModelFileError(f"{path}: unsupported f8hw model version {version!r} "
                             f"(this f8hw reads {', '.join(map(str, VERSIONS))})")
    meta = state.get("meta", {})
    if not isinstance(meta, dict) or not isinstance(state.get("graph"), dict):
        raise ModelFileError(f"{path}: malformed f8hw model file (graph/meta must be dicts)")
    try:
        graph = graph_from_state(state["graph"]).validate()
    except F8Error as e:
        raise ModelFileError(f"{path}: invalid graph: {e}") from None
    return graph, meta
