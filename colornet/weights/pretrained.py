"""The authors' released ImageNet models by name: download, verify, convert, cache.

`Colorizer.from_preset("eccv16_imagenet")`, `colornet colorize --model
eccv16_imagenet` and the other commands taking `--model` fetch a release on first
use: download, check its size and SHA-256, convert it with `colornet.weights.official`
(whose name, shape and bin checks are the layout check) and save the converted
model as `.keras` in the cache. Later uses load that file and need no network.

Each release lists its sources in order: the authors' URL first, then their other
hosting of the same file or of the same model in the other framework's format
(the Caffe release and the PyTorch port hold the same weights; `official` converts
both), each with its own published size and SHA-256. `COLORNET_WEIGHTS_MIRROR`,
when set, is tried first, for each source's file name. A source that fails (an
HTTP error, a timeout, a wrong checksum) is reported on one line and the next one
is tried; the final error names every source tried.

A download grows in a hidden partial file in the cache, named after the expected
file's SHA-256 and filled only under the release's lock. An interrupted download
keeps it, and the next attempt (from any source with the same checksum) asks only
for the rest; the checksum is checked on the whole file. Only a complete, verified,
converted model is ever written under a cache name.

Cache: `$COLORNET_CACHE`, else `$XDG_CACHE_HOME/colornet`, else `~/.cache/colornet`.
A cached model's name carries the first 8 hex digits of its release's SHA-256, so
a release with another checksum is never mistaken for a cached one. Every use
checks the cached file's zip directory and CRCs first (a fraction of loading it):
a damaged entry is moved aside and fetched again, saying so on stderr.

Importing this module registers the names as presets of `Colorizer.from_preset`
(`colornet.models.presets.PRETRAINED`): models never import the download code.
"""

import dataclasses
import functools
import glob
import os
import re
import shutil
import sys
import urllib.parse
import zipfile
import zlib

from colornet import prior as prior_lib
from colornet.models import presets
from colornet.models.loading import load_colorizer
from colornet.models.siggraph17 import load_siggraph17
from colornet.utils import files
from colornet.utils.errors import ColornetError
from colornet.weights import download, official, official17, pth

MIRROR_ENV = "COLORNET_WEIGHTS_MIRROR"
# A download being filled: release name, first 16 hex digits of the file's SHA-256.
_PARTIAL = ".{}.{}.partial"
CACHE_ENV = "COLORNET_CACHE"
# What Keras 3 writes into every `.keras` archive.
_KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")

LICENCE = (
    "BSD 2-Clause, Copyright (c) 2016 Richard Zhang, Phillip Isola, Alexei A. Efros "
    "(github.com/richzhang/colorization, LICENSE; the repository names no other terms "
    "for its model files)"
)
_BERKELEY = "http://eecs.berkeley.edu/~rich.zhang/projects/2016_colorization/files/demo_v2/"
# Open Model Zoo records size and SHA-256 of each file its downloader fetches.
_OMZ = "OpenVINO Open Model Zoo models/public/{}/model.yml"


@dataclasses.dataclass(frozen=True)
class Source:
    """One place a release's file is published.

    Args:
      url: the file's URL; its last part is the file name a mirror must hold, and
        says its format (`.caffemodel`: Caffe; anything else: a PyTorch `.pth`).
      size: its size in bytes, as published.
      sha256: its SHA-256 (64 hex digits), as published.
      checksum_source: where `size` and `sha256` were published.
      host: who publishes the file there, for the listing.
      network: the `ModelConfig` to convert into; None for the importer's own
        (`eccv16_pytorch` for a `.pth`, `eccv16` for a `.caffemodel`).
      architecture: "eccv16" (converted by `official` to a `Colorizer`) or
        "siggraph17" (by `official17` to a `Siggraph17`).
    """

    url: str
    size: int
    sha256: str
    checksum_source: str
    host: str = "the authors"
    network: object = None
    architecture: str = "eccv16"

    @property
    def file_name(self):
        return os.path.basename(urllib.parse.urlsplit(self.url).path)

    @property
    def is_caffe(self):
        return self.file_name.endswith(".caffemodel")


@dataclasses.dataclass(frozen=True)
class Release:
    """One released model and where its file can be fetched from.

    Args:
      name: the preset name (`--model NAME`).
      sources: `Source`s in the order they are tried; the first is the authors'
        own, and its checksum names the cached model.
      description: one line for `colornet pretrained`.
      licence: the licence of the weights, as their authors state it.
      prior: the prior it was trained with, recorded in the converted model
        (`colornet.prior.rebalancing_weights_of`); None: one colornet does not ship
        (the authors' ImageNet prior), so undoing its rebalancing needs `--prior`.
    """

    name: str
    sources: tuple
    description: str
    licence: str = LICENCE
    prior: str | None = None

    # The first source's, which identify the release.
    @property
    def url(self):
        return self.sources[0].url

    @property
    def size(self):
        return self.sources[0].size

    @property
    def sha256(self):
        return self.sources[0].sha256

    @property
    def file_name(self):
        return self.sources[0].file_name


RELEASES = {}


def register(release):
    """Makes `release` available by name, here and to `Colorizer.from_preset`."""
    RELEASES[release.name] = release
    presets.PRETRAINED[release.name] = lambda: load(release.name)
    return release


# The authors' PyTorch port (`colorizers/eccv16.py` loads it from this URL). The file
# name's 9b330a0b is its SHA-256's start (torch.hub's convention).
_PTH = Source(
    url="https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
    size=128_976_165,
    sha256="9b330a0bae53f4ded77b1e23defbf78beaa09c10ebc4c4999e8e4f4a160b93f9",
    checksum_source=_OMZ.format("colorization-v2") + " (commit 57fb5b33)",
    host="the authors' S3 bucket: the PyTorch port, converted to the `eccv16_pytorch` network",
)
# The Caffe release the port was converted from (the same weights), on the authors'
# Berkeley pages. eecs.berkeley.edu redirects to people.eecs.berkeley.edu, one server:
# down at times (richzhang/colorization issues 1, 73) and gone in 2024 (issue 112).
_CAFFE = Source(
    url=_BERKELEY + "colorization_release_v2.caffemodel",
    size=128_946_764,
    sha256="f5af1e602646328c792e1094f9876fe9cd4c09ac46fa886e5708a1abc89137b1",
    checksum_source=_OMZ.format("colorization-v2") + " (commit 161867c1)",
    host="the authors' Berkeley page: the Caffe release, converted to the `eccv16` network",
)
register(Release(
    name="eccv16_imagenet",
    sources=(_PTH, _CAFFE),
    description="the authors' PyTorch port of the ECCV16 ImageNet model (the `eccv16_pytorch` network; "
                "the `eccv16` network if fetched from the Caffe release)",
))
register(Release(
    name="eccv16_imagenet_caffe",
    sources=(_CAFFE, _PTH),
    description="the original Caffe release of the ECCV16 ImageNet model (the `eccv16` network; "
                "the `eccv16_pytorch` network if fetched from the PyTorch port)",
))
register(Release(
    name="eccv16_imagenet_norebal",
    sources=(Source(
        url=_BERKELEY + "colorization_release_v2_norebal.caffemodel",
        size=128_946_454,
        sha256="6ab42a7fa853eb7ca822b9a0a2997a08a29c819c985c3e70b460c6be9c8b2159",
        checksum_source=_OMZ.format("colorization-v2-norebal") + " (commit 161867c1)",
        host="the authors' Berkeley page (they publish no other copy of this one)",
    ),),
    description="the same network trained without class rebalancing: duller, safer colours (Caffe)",
    prior="uniform",
))


# The authors' SIGGRAPH 2017 hint network (`colorizers/siggraph17.py` loads it from
# this URL; df00044c is its SHA-256's start). They publish it nowhere else.
register(Release(
    name="siggraph17_imagenet",
    sources=(Source(
        url="https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
        size=136_787_426,
        sha256="df00044c0a4d7c3edcecf6f75437ce346a66e7a42612d9b968e1a7e17dbc6f66",
        checksum_source=_OMZ.format("colorization-siggraph") + " (commit 00a4830e)",
        host="the authors' S3 bucket: the SIGGRAPH 2017 network, converted to `Siggraph17`",
        architecture="siggraph17",
    ),),
    description="the authors' SIGGRAPH 2017 user-guided network (hints; ab by regression, "
                "a `Siggraph17`, not a `Colorizer`)",
))


def get_release(name):
    if name not in RELEASES:
        raise ColornetError(f"unknown pretrained model {name!r}; available: {', '.join(sorted(RELEASES))}")
    return RELEASES[name]


def is_pretrained_name(value):
    """True for a registered name that is not also an existing path (a path wins)."""
    return isinstance(value, str) and value in RELEASES and not os.path.exists(value)


def cache_dir():
    """`$COLORNET_CACHE`, else `$XDG_CACHE_HOME/colornet`, else `~/.cache/colornet`."""
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "colornet")


def candidates(release):
    """The (URL, `Source`) pairs a fetch tries, in order: each source's file under
    `$COLORNET_WEIGHTS_MIRROR` if set, then the sources themselves.

    Raises:
      ColornetError: the variable is not an http://, https:// or file:// URL.
    """
    mirror = mirror_base()
    mirrored = [(mirror + "/" + urllib.parse.quote(source.file_name), source)
                for source in release.sources] if mirror else []
    tries = {}  # two sources of one file name are one file under the mirror
    for url, source in mirrored + [(source.url, source) for source in release.sources]:
        tries.setdefault(url, source)
    return list(tries.items())


def mirror_base():
    """`$COLORNET_WEIGHTS_MIRROR` without a trailing slash, or None when it is unset.

    Raises:
      ColornetError: the variable is not an http://, https:// or file:// URL.
    """
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    if urllib.parse.urlsplit(mirror).scheme not in ("http", "https", "file"):
        raise ColornetError(f"{MIRROR_ENV}={mirror!r}: expected a base URL starting with http://, https:// or file://")
    return mirror.rstrip("/")


def cached_path(release):
    tag = f"-{release.sha256[:8]}" if release.sha256 else ""
    return os.path.join(cache_dir(), f"{release.name}{tag}.keras")


def load(name, loader=None):
    """The named release as a `Colorizer` (a `Siggraph17` for the 2017 network),
    fetched and converted on first use.

    A cached file that passes the archive check but that `loader` (a function of the
    path) cannot load, e.g. one an older Keras wrote, is moved aside and fetched
    again, once.
    """
    release = get_release(name)
    if loader is None:
        loader = load_siggraph17 if release.sources[0].architecture == "siggraph17" else load_colorizer
    path = fetch(name)
    try:
        return loader(path)
    except ColornetError as error:
        reason = str(error).removeprefix(f"{path}: ")
    path = _fetch(release, None, quiet=False, unloadable=reason)
    try:
        return loader(path)
    except ColornetError as error:
        raise ColornetError(f"{name}, fetched again: {error}") from None


def model_path(value):
    """What `--model` means: the cached `.keras` of a pretrained name (fetched if
    needed), or `value` unchanged.

    Raises:
      ColornetError: `value` is neither an existing path nor a registered name but
        looks like a name (no folder, no extension), e.g. a misspelt one.
    """
    if is_pretrained_name(value):
        return fetch(value)
    if isinstance(value, str) and not os.path.exists(value) and re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ColornetError(
            f"{value}: no such file or directory, nor a pretrained name ({', '.join(sorted(RELEASES))})"
        )
    return value


def fetch(name, local_file=None, quiet=False):
    """Makes sure the named release is in the cache; returns the cached `.keras` path.

    A cached file whose archive is damaged (`_damage`) is moved aside to
    `NAME.keras.damaged` (replacing an older one), with a line on stderr, and the
    release is fetched again.

    Args:
      name: a registered name.
      local_file: the release file already downloaded (by hand): verified and
        converted instead of downloading.
      quiet: no progress messages on stderr.

    Raises:
      ColornetError: one line naming the URL (or file) and what to do instead, for
        no network, an HTTP error, a timeout, a wrong size or checksum, a file that
        is not the release's layout, or a cache that cannot be written. Nothing is
        left in the cache under a name a later run would use.
    """
    return _fetch(get_release(name), local_file, quiet)


def _fetch(release, local_file, quiet, unloadable=None):
    """`fetch`; `unloadable`: why the cached file, though a sound archive, did not load."""
    path = cached_path(release)
    if local_file is None and unloadable is None and os.path.isfile(path) and _damage_once(path) is None:
        return path
    try:
        tries = None if local_file is not None else candidates(release)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise ColornetError(f"cannot create the cache {directory} ({error.strerror}); set {CACHE_ENV}") from None
        with download.lock(os.path.join(directory, f".{os.path.basename(path)}.lock"), quiet=quiet):
            if local_file is None and os.path.isfile(path):
                damage = unloadable or _damage(path)
                if damage is None:  # another process fetched it meanwhile
                    return path
                _move_aside(path, damage, release)
            for stale in _stale_temporaries(release):  # from a killed process that held this lock
                os.unlink(stale)
            _check_free_space(release, directory)
            if local_file is not None:
                local_file = os.fspath(local_file)
                try:
                    source = _source_of_file(release, local_file)
                except OSError as error:
                    raise ColornetError(f"{local_file}: {error.strerror}") from None
                _save(_convert(source, local_file, local_file, path, quiet, release.prior), path)
                return path
            _download_and_convert(release, tries, path, quiet)
    except OSError as error:  # the cache: a lock file or a moved-aside file that cannot be written
        problem = f"cannot write in the cache: {error.filename or cache_dir()}: {error.strerror or error}"
        raise ColornetError(problem if local_file is not None else f"{problem}; {_advice(release)}") from None
    except ColornetError as error:
        if local_file is not None:
            raise
        raise ColornetError(f"{error}; {_advice(release)}") from None
    return path


def _download_and_convert(release, tries, path, quiet):
    """Tries each (URL, source) of `tries` in turn until one gives a model, saved at `path`.

    Raises:
      ColornetError: every one failed (the message names each and why), or the cache
        cannot be written (at once: another source would not help).
    """
    failures = []
    for number, (url, source) in enumerate(tries, 1):
        partial = _partial_path(release, source)
        try:
            download.resume_download(url, partial, source.size, source.sha256,
                                     timeout=download.DEFAULT_TIMEOUT, quiet=quiet)
        except download.DownloadError as error:
            failures.append(str(error))
        else:
            try:
                model = _convert(source, partial, url, path, quiet, release.prior)
            except ColornetError as error:  # the published file, but not a layout `official` reads
                failures.append(str(error))
            else:
                _save(model, path)
                return
            finally:
                os.unlink(partial)
        if not quiet:
            then = "; trying the next source" if number < len(tries) else ""
            print(f"colornet: {failures[-1]}{then}", file=sys.stderr, flush=True)
    if len(failures) == 1:
        raise ColornetError(failures[0])
    listed = "; ".join(f"({number}) {failure}" for number, failure in enumerate(failures, 1))
    raise ColornetError(f"no source of {release.name} could be used: {listed}")


def _partial_path(release, source):
    """Where a download of `source`'s file grows: named after its checksum, so that
    another source of the same file (a mirror) resumes it."""
    return os.path.join(cache_dir(), _PARTIAL.format(release.name, source.sha256[:16]))


def _source_of_file(release, path):
    """The source whose file `path` is (by size and SHA-256).

    Raises:
      DownloadError: it is none of them; one line naming `path`.
    """
    size = os.path.getsize(path)
    same_size = [source for source in release.sources if source.size == size]
    if not same_size:
        sizes = " or ".join(f"{source.size:,}" for source in release.sources)
        raise download.DownloadError(f"{path}: {size:,} bytes, expected {sizes} (an incomplete or different file)")
    digest = download.file_sha256(path)
    for source in same_size:
        if source.sha256 == digest:
            return source
    raise download.DownloadError(
        f"{path}: SHA-256 {digest[:16]}... differs from the published {same_size[0].sha256[:16]}... "
        "(a damaged or different file)"
    )


def _damage_once(path):
    """`_damage`, checked once per process for each version of the file: a name
    passed to `colornet.colorize` again and again must not re-read 129 MB each time.
    A new version (fetched again, replaced) has another inode or mtime."""
    stat = os.stat(path)
    return _damage_of_version(path, (stat.st_ino, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=16)
def _damage_of_version(path, version):
    return _damage(path)


def _damage(path):
    """Why the cached `.keras` file at `path` cannot be trusted, or None if it is sound.

    Reads the whole archive and checks each member's CRC-32, which catches a
    truncated, overwritten or bit-flipped file, for which Keras' own load gives a
    misleading message. It reads the whole file, a fraction of what loading it
    costs; `_damage_once` does it once per version of the file in a process."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [member for member in _KERAS_MEMBERS if member not in archive.namelist()]
            if missing:
                return f"no {', '.join(missing)} in the archive"
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        return f"not a readable .keras archive: {error or type(error).__name__}"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if corrupt is not None:
        return f"{corrupt} fails its CRC check"
    return None


def _move_aside(path, damage, release):
    aside = path + ".damaged"
    try:
        os.replace(path, aside)
    except OSError as error:
        raise ColornetError(
            f"the cached {path} is damaged ({damage}) and cannot be moved aside ({error.strerror}); "
            f"delete it to fetch {release.name} again"
        ) from None
    print(
        f"colornet: the cached {path} is damaged ({damage}); moved it to {aside} (delete that when you like) "
        f"and fetching {release.name} again",
        file=sys.stderr, flush=True,
    )


def _convert(source, raw, name, path, quiet, prior=None):
    """The model in the verified file `raw` of `source` (named `name` in errors), with
    the release's `prior` recorded in it (None: not known).

    Raises:
      ColornetError: the file is not the layout `official` reads.
    """
    if not quiet:
        print(f"converting {source.file_name} to {path}", file=sys.stderr, flush=True)
    # The source's own name says its format: a file saved by hand may be named otherwise.
    if source.architecture == "siggraph17":
        return official17.convert_state_dict(pth.load(raw), source=name)
    if source.is_caffe:
        model = official.convert_caffe_blobs(official.read_caffemodel(raw), source=name, network=source.network)
    else:
        model = official.convert_state_dict(pth.load(raw), source=name, network=source.network)
    if prior is not None:
        model.model_config = model.model_config.replace(
            rebalancing_weights=tuple(prior_lib.rebalancing_weights_of(prior))
        )
    return model


def _save(model, path):
    try:
        official.save_colorizer(model, path)
    except OSError as error:
        raise ColornetError(f"cannot write {path}: {error.strerror or error}") from None


def _advice(release):
    """What to do instead, naming the sources' URLs (errors may name none of them:
    a full disk, a cache that cannot be written)."""
    urls = " or ".join(source.url for source in release.sources)
    names = " or ".join(dict.fromkeys(source.file_name for source in release.sources))
    return (
        f"instead, download {urls} by hand and run `colornet pretrained {release.name} --file FILE`, "
        f"or set {MIRROR_ENV} to a URL or file:// folder that holds {names}"
    )


def _check_free_space(release, directory):
    """Refuses early a download that cannot fit: the file plus the converted model,
    each about the release's size."""
    if release.size is None:
        return
    needed = 2 * release.size
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise ColornetError(
            f"{directory}: {free / 1e6:.0f} MB free, {release.name} needs about {needed / 1e6:.0f} MB "
            f"(download and converted model); free space or set {CACHE_ENV} to another disk"
        )


def describe():
    """The `colornet pretrained` listing: one block per release.

    A `$COLORNET_WEIGHTS_MIRROR` that is not a URL is one warning on stderr; the
    listing still shows the sources."""
    try:
        mirror = mirror_base()
    except ColornetError as error:
        print(f"colornet: warning: {error}; fetching fails until it is fixed", file=sys.stderr, flush=True)
        mirror = None
    blocks = []
    for release in RELEASES.values():
        path = cached_path(release)
        damage = _damage(path) if os.path.isfile(path) else None
        if damage:
            cached = f"damaged, {path} ({damage}; fetched again on next use)"
        else:
            cached = f"yes, {path}" if os.path.isfile(path) else "no (downloaded on first use)"
        lines = [f"{release.name}: {release.description}"]
        if mirror:
            names = ", ".join(source.file_name for source in release.sources)
            lines.append(f"  mirror:   {mirror}/ ({MIRROR_ENV}, tried first for {names})")
        for number, source in enumerate(release.sources, 1):
            lines += [
                f"  source {number}: {source.url}",
                f"            {source.host}",
                f"            {source.size:,} bytes, SHA-256 {source.sha256}",
                f"            (as published in {source.checksum_source})",
            ]
        lines += [f"  cached:   {cached}", f"  licence:  {release.licence}"]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + f"\ncache: {cache_dir()} (set {CACHE_ENV} to move it)"


def _stale_temporaries(release):
    """Temporary files of this release's conversions, and partial downloads of files
    none of its sources holds any more (a release whose checksum changed). Both are
    written only while the release's lock is held, so any found by its holder are a
    killed process's. The partial downloads of its sources stay, to be resumed."""
    directory = cache_dir()
    current = {os.path.join(directory, _PARTIAL.format(release.name, s.sha256[:16])) for s in release.sources}
    partials = glob.glob(os.path.join(directory, _PARTIAL.format(glob.escape(release.name), "*")))
    converting = glob.escape(files.hidden_stem(os.path.basename(cached_path(release)))) + ".*.tmp.keras"
    return sorted([p for p in partials if p not in current] + glob.glob(os.path.join(directory, converting)))
