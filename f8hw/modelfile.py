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
from f8hw.schema import FILE_KEYS, check_graph_state, check_keys, check_meta, check_reaches_output

FORMAT = "f8hw-model"
VERSION = 2
"""The newest model file version; every version in VERSIONS loads."""
VERSIONS = (1, 2)


def save_model(graph: Graph, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Validate graph and write it (with meta: primitives only) to path."""
    import torch

    try:
        graph.validate()
        check_reaches_output(graph)
        graph_state = graph_to_state(graph)
        check_graph_state(graph_state)  # the loader's own schema: never write what load_model refuses
    except F8Error as e:
        raise ModelFileError(f"{path}: refusing to save an invalid graph: {e}") from None
    state = {"format": FORMAT, "version": VERSION if uses_v2(graph) else 1, "graph": graph_state,
             "meta": dict(meta or {})}
    try:
        check_meta(state["meta"])
    except F8Error as e:
        raise ModelFileError(f"{path}: refusing to save: {e}") from None
    try:
        torch.save(state, path)
    except (OSError, RuntimeError) as e:  # torch reports a missing directory as RuntimeError
        raise ModelFileError(f"{path}: cannot write: {getattr(e, 'strerror', None) or e}") from None


def _container(path) -> str:
    """What kind of file this is, from its first bytes: "zip" (what torch.save writes) or a description."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if not head:
        return "an empty file"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file"
    if head[:1] == b"\x80":
        return "a plain pickle, not a torch zip archive"
    return "not a zip archive"


def load_model(path: str | os.PathLike) -> tuple[Graph, dict]:
    """Load and validate a model file; returns (graph, meta). ModelFileError names the file."""
    import pickle
    import warnings

    import torch

    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a model file")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    kind = _container(path)
    if kind != "zip":
        raise ModelFileError(f"{path}: not an f8hw model file ({kind}); f8hw model files are torch zip archives "
                             f"written by f8hw (f8hw.export, f8hw train, f8hw import)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        # never pass on torch's advice (allowlisting globals or weights_only=False): that would run the file's code
        raise ModelFileError(f"{path}: this file holds Python objects; f8hw model files hold only tensors and "
                             f"plain data (re-export it with f8hw); nothing in it was run") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/OSError/... for damaged archives
        why = "a damaged or truncated zip archive" if isinstance(e, (RuntimeError, OSError, EOFError)) else \
            f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
        raise ModelFileError(f"{path}: not a readable torch model file ({why})") from None
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
        check_keys("file", state, FILE_KEYS, "top-level", ModelFileError)
        check_meta(meta)
    except F8Error as e:
        raise ModelFileError(f"{path}: malformed f8hw model file: {e}") from None
    try:
        graph = graph_from_state(state["graph"]).validate()
        check_reaches_output(graph)
    except F8Error as e:
        raise ModelFileError(f"{path}: invalid graph: {e}") from None
    if version < 2 and uses_v2(graph):
        raise ModelFileError(f"{path}: a version {version} file holding FP8 formats or a 64-bit output "
                             f"(those need version 2): a damaged or hand-edited file")
    return graph, meta
