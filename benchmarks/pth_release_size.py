"""Which torch.save format the PyTorch release most likely is, from its published size.

Saves a state dict of the release's exact layout (`colorizers/eccv16.py`'s names and
shapes: the `eccv16_pytorch` network's weights, batch-norm statistics,
`num_batches_tracked`, `model_out.weight`) in torch's legacy and zip formats and
prints, for each and for the published file, the bytes beyond the tensors' raw
bytes (pickle, per-storage headers, zip records). Needs PyTorch; no network.

    python benchmarks/pth_release_size.py
"""

import collections
import os
import tempfile

import torch

from colornet import bins
from colornet.models import Colorizer
from colornet.weights import official, pretrained


def release_layout():
    """Zero tensors named and shaped as the release's state dict."""
    state = collections.OrderedDict()
    for sources in official._pytorch_plan(Colorizer.from_preset(official.PYTORCH_PRESET)).values():
        for name, shape in sources:
            state[name] = torch.zeros(shape)
            if name.endswith("running_var"):
                state[name.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    state[official.PYTORCH_DECODE_WEIGHT] = torch.zeros(2, bins.ab_bins().shape[0], 1, 1)
    return state


def main():
    state = release_layout()
    raw = sum(t.numel() * t.element_size() for t in state.values())
    published = pretrained.RELEASES["eccv16_imagenet"].size
    print(f"{len(state)} tensors, {raw:,} bytes of values")
    print(f"published file: {published:,} bytes, {published - raw:,} beyond the values")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "colorization_release_v2-9b330a0b.pth")
        for label, zip_format in (("legacy format", False), ("zip format", True)):
            torch.save(state, path, _use_new_zipfile_serialization=zip_format)
            size = os.path.getsize(path)
            print(f"{label}: {size:,} bytes, {size - raw:,} beyond the values "
                  f"({size - published:+,} vs published) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
