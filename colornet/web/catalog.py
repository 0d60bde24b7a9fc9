"""The models the app offers, each loaded once, and the network lock.

A request names a model by its id in the catalog, never by a path: the bundled
model ("bundled"), each released model (`colornet pretrained`; usable once it is in
the cache, fetched when the page asks), each model file given on the command line
("file-1", ...), and, for tests, a `Predictor` handed to the app ("given").

Every predictor the catalog hands out runs its network under one lock, shared by
every request and job of the process, so two clients never run a network at once.
"""

import dataclasses
import os
import threading

import colornet
from colornet.deploy.predictors import BUNDLED_MODEL_PATH, Predictor
from colornet.utils.errors import ColornetError
from colornet.weights import pretrained

BUNDLED = "bundled"
GIVEN = "given"


class UnknownModel(ColornetError):
    """No model has this id."""


class ModelNotReady(ColornetError):
    """A released model that is not downloaded yet."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One model of the catalog.

    Args:
      id: what requests name it by.
      label: what the page shows.
      kind: "bundled", "pretrained", "file" or "given".
      source: what `colornet.load_predictor` takes: None (the bundled model), a
        release name, a path, or a `Predictor`.
      download_bytes: a release's download size; None for the others.
    """

    id: str
    label: str
    kind: str
    source: object = None
    download_bytes: int | None = None


class Serialized(Predictor):
    """A `Predictor` whose network runs under `lock`."""

    def __init__(self, inner, lock):
        self.inner = inner
        self.lock = lock
        self.size = inner.size
        self.source = inner.source
        self.takes_hints = inner.takes_hints

    def logits(self, l_small, hints=None):
        with self.lock:
            return self.inner.logits(l_small, hints)


class ModelCatalog:
    """The models of one app process.

    Args:
      models: what `colornet app --model` was given, in order: release names and
        model paths (files, workdirs, SavedModels). The first is the default;
        without any, the bundled model is.
      predictor: a `Predictor` to offer (and make the default) as "given".
      lock: the network lock (an `RLock`: a request holding it may call the network).
    """

    def __init__(self, models=(), predictor=None, lock=None):
        self.lock = lock or threading.RLock()
        self._loading = threading.Lock()
        self._loaded = {}
        self._entries = {}
        default = None
        if predictor is not None:
            self._add(Entry(GIVEN, predictor.source or "given model", "given", predictor))
            default = GIVEN
        if os.path.isfile(BUNDLED_MODEL_PATH):
            self._add(Entry(BUNDLED, "bundled model", "bundled"))
        for name, release in pretrained.RELEASES.items():
            self._add(Entry(name, f"{name} (released)", "pretrained", name, release.size))
        files = 0
        for model in models:
            if pretrained.is_pretrained_name(model):
                default = default or model
                continue
            if not os.path.exists(model):
                raise ColornetError(f"{model}: no such file or directory, nor a pretrained name")
            files += 1
            entry = Entry(f"file-{files}", os.path.basename(os.path.normpath(model)), "file", os.path.abspath(model))
            self._add(entry)
            default = default or entry.id
        self.default = default or BUNDLED
        if self.default not in self._entries:
            raise ColornetError("the bundled model is missing: reinstall colornet, or pass --model")

    def _add(self, entry):
        self._entries[entry.id] = entry

    def entry(self, model_id):
        """The entry of `model_id` (None or "" for the default).

        Raises:
          UnknownModel: no such id.
        """
        model_id = model_id or self.default
        if not isinstance(model_id, str) or model_id not in self._entries:
            raise UnknownModel(f"no model {str(model_id)[:80]!r} (GET /api/models lists them)")
        return self._entries[model_id]

    def ready(self, entry):
        """Whether the model can be loaded without a download."""
        if entry.kind != "pretrained":
            return True
        return os.path.isfile(pretrained.cached_path(pretrained.get_release(entry.source)))

    def predictor(self, model_id=None):
        """The model's `Serialized` predictor, loaded on first use and kept.

        Raises:
          UnknownModel, ModelNotReady, ColornetError: the model cannot be loaded.
        """
        entry = self.entry(model_id)
        with self._loading:
            if entry.id not in self._loaded:
                if not self.ready(entry):
                    raise ModelNotReady(
                        f"{entry.id} is not downloaded yet ({entry.download_bytes / 1e6:.0f} MB): "
                        f"fetch it first (POST /api/models/{entry.id}/fetch)"
                    )
                self._loaded[entry.id] = Serialized(colornet.load_predictor(entry.source), self.lock)
            return self._loaded[entry.id]

    def fetch(self, model_id):
        """Downloads a released model into the cache (blocking)."""
        entry = self.entry(model_id)
        if entry.kind == "pretrained":
            pretrained.fetch(entry.source, quiet=True)

    def describe(self, entry):
        """What the API says about one model; `takes_hints` is None until it is loaded."""
        loaded = self._loaded.get(entry.id)
        return {
            "id": entry.id,
            "label": entry.label,
            "kind": entry.kind,
            "ready": self.ready(entry),
            "loaded": loaded is not None,
            "takes_hints": None if loaded is None else bool(loaded.takes_hints),
            "download_bytes": entry.download_bytes,
        }

    def list(self):
        return [self.describe(entry) for entry in self._entries.values()]
