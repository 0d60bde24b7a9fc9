"""Independent oracles: NumPy float64 implementations of the paper's formulas, and a
conversion of released weights run where PyTorch cannot be imported."""

import numpy as np

from colornet import bins


def soft_encode(ab, k=5, sigma=5.0):
    """Brute force over all 313 bins: dense `(..., 313)` float64 targets."""
    ab = np.asarray(ab, np.float64)
    flat = ab.reshape(-1, 2)
    centres = bins.ab_bins().astype(np.float64)
    d2 = ((flat[:, None, :] - centres[None]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    logw = -np.take_along_axis(d2, nearest, 1) / (2 * sigma**2)
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    dense = np.zeros((len(flat), 313))
    np.put_along_axis(dense, nearest, w, 1)
    return dense.reshape(*ab.shape[:-1], 313)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))


def weights_converted_without_torch(module, call, out):
    """Runs `from colornet.weights import MODULE; model = MODULE.CALL` in a fresh
    process where `import torch` fails, and returns the model's weights, flattened and
    concatenated (saved to `out`, a `.npy` path): PyTorch stays a test oracle only."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np\n"
        f"from colornet.weights import {module}\n"
        f"model = {module}.{call}\n"
        "assert 'torch' not in sys.modules\n"
        "np.save(sys.argv[1], np.concatenate([w.numpy().ravel() for w in model.weights]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return np.load(out)
