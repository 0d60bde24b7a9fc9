"""Training: the run's configuration, the loop, and what is adjusted afterwards.

* `config.py`: `TrainConfig` and the choices of its fields (plain Python, for the
  CLI's help).
* `train.py`: `train(config)`: strategy, compiled model, `fit` or the multi-worker
  loop, checkpoints, resume, logs.
* `recalibrate.py`: batch-norm statistics recomputed for the final weights;
  `undo_rebalancing`.

Public names are imported on first use (`colornet.utils.exports`); the function
`train` is `colornet.train` (here `colornet.training.train` is its module).
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "TrainConfig": "colornet.training.config",
        "make_strategy": "colornet.training.train",
        "build_model": "colornet.training.train",
        "recalibrate_file": "colornet.training.recalibrate",
        "recalibrate_on_images": "colornet.training.recalibrate",
        "undo_rebalancing": "colornet.training.recalibrate",
    },
)
