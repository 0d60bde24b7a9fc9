"""Training: strategy, compile, fit, checkpoints, resume, logs.

`train(config)` builds the model in the chosen `tf.distribute` strategy, restores
the latest complete checkpoint in the workdir if there is one, and trains with
Keras `fit` (or, across workers, with a custom loop: see `_train_multi_worker`).

Workdir layout:
  config.json           the resolved `TrainConfig` (written before training)
  checkpoints/ckpt-N.*  `tf.train.Checkpoint` of model and optimizer; N counts saves
  checkpoints/checkpoint  the index of complete checkpoints; TF rewrites it
                        atomically after a save has been written in full, so a
                        process killed mid-save leaves the previous one current
  logs/                 TensorBoard: losses, learning rate, throughput, samples
  model.keras           the final model (written atomically at the end), its
                        batch-norm statistics recomputed for its final weights

One Keras "epoch" is one checkpoint interval (`checkpoint_every` steps), so a
killed run loses at most one interval of work.
"""

import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf

from colornet import constants as c
from colornet import inference
from colornet.training.config import STRATEGIES
from colornet.utils import files
from colornet.utils.errors import ColornetError, first_line

_KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def make_strategy(name):
    """The `tf.distribute` strategy for `name`; create it before any other TF op.

    multi_worker reads the cluster from the TF_CONFIG environment variable; tpu
    from the TPU_NAME environment variable or the local TPU.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ColornetError("--strategy multi_worker needs TF_CONFIG (see README: multi-worker)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def _write_json_atomically(path, payload):
    with files.atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)


def _prepare_workdir(config):
    try:
        os.makedirs(os.path.join(config.workdir, "checkpoints"), exist_ok=True)
        _write_json_atomically(os.path.join(config.workdir, "config.json"), dataclasses.asdict(config))
    except OSError as error:
        raise ColornetError(f"cannot write to workdir {config.workdir}: {error.strerror or error}") from None


def build_model(config):
    """The compiled colorizer of a `TrainConfig` (call inside the strategy scope)."""
    from colornet.losses import RebalancedLoss
    from colornet.metrics import UnweightedCrossEntropy
    from colornet.models import Colorizer
    from colornet.models.solver import SolverConfig

    # Global-batch norm statistics keep replicas' and workers' moving averages equal.
    model = Colorizer.from_preset(
        config.preset, **_network_overrides(config), norm_synchronized=config.strategy != "default"
    )
    model.compile(
        optimizer=SolverConfig(
            learning_rate=config.learning_rate,
            schedule=config.lr_schedule,
            decay_steps=config.lr_decay_every,
            decay_rate=config.lr_decay,
            warmup_steps=config.warmup_steps,
            total_steps=_total_steps(config),
            decay_start=config.decay_start,
            ema=config.ema,
        ).optimizer(),
        loss=RebalancedLoss(class_weights=config.prior, k=config.k),
        metrics=[UnweightedCrossEntropy(k=config.k)],
    )
    # The model's own record of its prior: what undoing rebalancing later needs.
    model.model_config = model.model_config.replace(rebalancing_weights=tuple(model.loss.class_weights))
    model.optimizer.build(model.trainable_variables)
    return model


def _network_overrides(config):
    """The `ModelConfig` fields a `TrainConfig` changes in its preset."""
    return {"hints": True} if config.hints else {}


def _step(optimizer):
    # int() fails on a variable mirrored by tf.distribute; reading its value works.
    return int(optimizer.iterations.value.numpy())


def _current_lr(optimizer):
    lr = optimizer.learning_rate
    return float(lr(optimizer.iterations.value) if callable(lr) else lr)


class _Checkpointer(keras.callbacks.Callback):
    """Saves at each interval end; stops at the target step; refuses NaN weights."""

    def __init__(self, manager, total_steps):
        super().__init__()
        self.manager = manager
        self.total_steps = total_steps
        self.nan_step = None

    def _step(self):
        return _step(self.model.optimizer)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_step = self._step()
            self.model.stop_training = True
        elif self._step() >= self.total_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_step is None:
            self.save()

    def save(self):
        try:
            self.manager.save(checkpoint_number=self._step())
        except (OSError, tf.errors.OpError) as error:
            self.model.stop_training = True
            raise ColornetError(
                f"could not write a checkpoint in {self.manager.directory} ({first_line(error)}); "
                f"the previous checkpoint {self.manager.latest_checkpoint} is intact"
            ) from None


class _TensorBoardLogger(keras.callbacks.Callback):
    """Losses, learning rate and throughput every `log_every` steps; sample grids."""

    def __init__(self, logdir, config, sample_batch):
        super().__init__()
        self.writer = tf.summary.create_file_writer(logdir)
        self.config = config
        self.sample_batch = sample_batch
        self._last = None

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model.optimizer)
        now = time.perf_counter()
        if self._last is None:
            self._last = (step, now)
        if step % self.config.log_every == 0 and step > self._last[0]:
            images_per_s = (step - self._last[0]) * self.config.batch_size / (now - self._last[1])
            with self.writer.as_default(step=step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(f"train/{name}", float(value))
                tf.summary.scalar("train/learning_rate", _current_lr(self.model.optimizer))
                tf.summary.scalar("train/images_per_second", images_per_s)
            self._last = (step, now)
        if self.sample_batch is not None and step % self.config.sample_every == 0:
            self.write_samples(step)

    def write_samples(self, step):
        # A preview must never end a long run: report its failure and go on.
        try:
            self._write_samples(step)
        except Exception as error:  # noqa: BLE001 - any failure here is non-fatal
            print(f"colornet train: warning: sample grid at step {step} not written: {error}")

    def _write_samples(self, step):
        l_raw, ab = self.sample_batch
        predicted = inference.colorize_l(self.model, l_raw)
        truth = inference.join_l_ab(l_raw, ab)
        grey = tf.image.grayscale_to_rgb(tf.cast(l_raw, tf.float32) / 100.0)
        # Each row: grey input | colourised | ground truth.
        grid = tf.concat([grey, predicted, truth], axis=2)
        with self.writer.as_default(step=step):
            tf.summary.image("samples/grey_colourised_truth", grid, max_outputs=len(grid))
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.flush()


def _total_steps(config):
    if config.steps is not None:
        return config.steps
    from colornet import data

    return config.epochs * math.ceil(data.count_images(config.data) / config.batch_size)


def _sample_batch(config):
    from colornet import data

    source = config.val_data or config.data
    dataset = data.eval_dataset(
        source, batch_size=config.num_samples, crop=config.crop, resize=config.resize
    )
    for l_raw, ab in dataset.take(1):
        return l_raw, ab
    return None


def _recalibrated_copy(model, config):
    """A copy of `model` with batch-norm statistics recomputed for its final weights
    on training photos (`colornet.training.recalibrate`); `model` itself if that is turned off.

    The copy is a plain network outside any distribution strategy: a synchronized
    batch norm called by one worker alone would wait for the others forever.
    """
    from colornet.models import Colorizer
    from colornet.training import recalibrate

    if not config.recalibrate_images:
        return model
    plain = Colorizer.from_preset(config.preset, **_network_overrides(config))
    plain.model_config = plain.model_config.replace(rebalancing_weights=model.model_config.rebalancing_weights)
    plain.set_weights(model.get_weights())
    used = recalibrate.recalibrate_on_images(
        plain, config.data, images=config.recalibrate_images, size=c.TRAIN_RESIZE
    )
    if config.verbose:
        print(f"batch-norm statistics recomputed on {used} training images")
    return plain


def _save_final_model(model, config):
    path = os.path.join(config.workdir, "model.keras")
    with files.atomic_path(path, ".keras") as tmp:
        model.save(tmp)
    return path


def _finish(model, config, checkpointer):
    """The end of a run: the EMA weights (if kept) and precise batch-norm statistics
    go into the model, the last checkpoint and `model.keras`, so that the workdir and
    the file load as the same finished model; an extended run resumes from it.
    Running it again on a finished model changes nothing but the sample of photos.
    """
    if model.optimizer.use_ema:
        # `fit` has done this already; a run stopped before its end has not.
        model.optimizer.finalize_variable_values(model.trainable_variables)
    model.set_weights(_recalibrated_copy(model, config).get_weights())
    checkpointer.save()
    return _save_final_model(model, config)


def train(config):
    """Trains (or resumes) a colorizer as `config` says; returns a summary dict.

    Raises:
      ColornetError: for a workdir that cannot be written, a NaN loss (the last
        good checkpoint is kept) or unusable data.
    """
    strategy = make_strategy(config.strategy)
    keras.mixed_precision.set_global_policy(_KERAS_POLICIES[config.precision])
    start = _Start.of(config.init_from)
    config = start.resolve(config)
    _prepare_workdir(config)
    if config.strategy == "multi_worker":
        return _train_multi_worker(config, strategy)

    from colornet import data

    total_steps = _total_steps(config)
    with strategy.scope():
        model = build_model(config)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    elif start.weights is not None:
        _init_weights(model, start.weights, config.init_from)
        if config.verbose:
            print(f"starting from the weights of {config.init_from} ({config.preset} network), at step 0 "
                  f"with a new optimizer, learning rate {config.learning_rate:g}")
    elif start.checkpoint is not None:
        checkpoint.restore(start.checkpoint).assert_existing_objects_matched()
        if config.verbose:
            print(f"starting from {config.init_from} at step {_step(model.optimizer)}")
    start_step = _step(model.optimizer)
    checkpointer = _Checkpointer(manager, total_steps)
    if start_step >= total_steps:
        print(f"already trained to step {start_step} (target {total_steps}): finishing the model only")
        return {"step": start_step, "model": _finish(model, config, checkpointer)}
    if manager.latest_checkpoint and config.verbose:
        print(f"resuming from {manager.latest_checkpoint} at step {start_step}")

    # Reseed on resume so a restarted run does not replay the images it has seen.
    dataset = data.train_dataset(
        config.data,
        batch_size=config.batch_size,
        crop=config.crop,
        resize=config.resize,
        seed=config.seed + start_step,
        hints=config.hints,
    )
    interval = config.checkpoint_every
    logger = _TensorBoardLogger(os.path.join(config.workdir, "logs"), config, _sample_batch(config))
    started = time.perf_counter()
    model.fit(
        dataset,
        epochs=math.ceil(total_steps / interval),
        initial_epoch=start_step // interval,
        steps_per_epoch=interval,
        callbacks=[checkpointer, logger],
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    if checkpointer.nan_step is not None:
        raise ColornetError(
            f"the loss became NaN or Inf at step {checkpointer.nan_step}; training stopped. "
            f"Last good checkpoint: {manager.latest_checkpoint}. Lower the learning rate "
            "or check the data, then run again to resume from it."
        )
    model_path = _finish(model, config, checkpointer)
    return {
        "step": _step(model.optimizer),
        "seconds": time.perf_counter() - started,
        "checkpoint": manager.latest_checkpoint,
        "model": model_path,
    }


@dataclasses.dataclass(frozen=True)
class _Start:
    """What `init_from` names: the `Colorizer` whose weights a run starts from
    (`weights`), or a checkpoint prefix (`checkpoint`); and the preset of its network,
    if it is one (None: another network, or unknown)."""

    weights: object = None
    checkpoint: str | None = None
    preset: str | None = None
    hints: bool = False  # the network it names takes hints

    @classmethod
    def of(cls, init_from):
        """Raises ColornetError for a name, file or directory that is none of those."""
        from colornet.models import loading
        from colornet.training import recalibrate
        from colornet.weights import pretrained

        if init_from is None:
            return cls()
        if pretrained.is_pretrained_name(init_from) or init_from.endswith((".npz", ".keras")):
            try:
                model = pretrained.load(init_from) if pretrained.is_pretrained_name(init_from) else (
                    loading.load_colorizer(init_from))
            except ColornetError as error:
                raise ColornetError(f"init_from {init_from}: {error}") from None
            if not hasattr(model, "model_config"):  # the SIGGRAPH 2017 network: not one colornet trains
                raise ColornetError(f"init_from {init_from}: a {type(model).__name__}, not a colornet Colorizer")
            # Training learns the logits as trained: any rebalancing undone in them goes back.
            recalibrate.undo_rebalancing(model, 0.0)
            return cls(weights=model, preset=_preset_of(model.model_config), hints=model.model_config.hints)
        prefix = _init_checkpoint(init_from)
        recorded = _workdir_config(os.path.dirname(os.path.dirname(prefix)))
        return cls(checkpoint=prefix, preset=recorded.get("preset"), hints=bool(recorded.get("hints")))

    def resolve(self, config):
        """`config` with its network and learning rate decided.

        Raises:
          ColornetError: `config.preset` names another network than the weights'.
        """
        preset = config.preset
        if self.preset is not None and preset not in (None, self.preset):
            raise ColornetError(
                f"init_from {config.init_from} holds the {self.preset!r} network, not the preset {preset!r} "
                "asked for: leave the preset out (the network follows the weights)"
            )
        if preset is None and self.weights is not None and self.preset is None:
            raise ColornetError(
                f"init_from {config.init_from}: its network is none of the presets; name the preset it was "
                "built from, and its other fields will be compared"
            )
        from colornet.models import solver

        learning_rate = config.learning_rate
        if learning_rate is None:
            from_weights = self.weights is not None
            learning_rate = solver.FINETUNE_LEARNING_RATE if from_weights else solver.BASE_LEARNING_RATE
        return config.replace(
            preset=preset or self.preset or "eccv16", learning_rate=learning_rate, hints=config.hints or self.hints
        )


def _preset_of(model_config):
    """The name of the preset whose network `model_config` is (ignoring the records
    that are not the network's), or None."""
    from colornet.models import presets

    plain = model_config.replace(
        norm_synchronized=False, undo_rebalancing=0.0, hints=False, rebalancing_weights=None
    )
    return next((name for name, preset in presets.PRESETS.items() if preset() == plain), None)


def _workdir_config(workdir):
    """What a workdir's `config.json` records, or {} (no such file, or not a dict)."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _init_weights(model, source, name):
    """Sets `model`'s weights (moving statistics included) to those of `source`, a
    `Colorizer` of the same network (`name`: where it came from, for errors). A model
    without hints may start a hint model: its hint convolution keeps its zeros, so
    the run starts where that model was."""
    # The records of norm synchronisation, of the prior and of hints say nothing of the
    # rest of the network.
    ignored = {"norm_synchronized", "hints", "rebalancing_weights"}
    mine, theirs = model.model_config.to_dict(), source.model_config.to_dict()
    differ = sorted(k for k in mine if k not in ignored and mine[k] != theirs[k])
    if source.model_config.hints and not model.model_config.hints:
        differ.append("hints")
    if differ:
        raise ColornetError(f"init_from {name}: another network than the preset's (differs in {differ})")
    values = {w.path: w for w in source.weights}
    for target in model.weights:
        if target.path in values:
            target.assign(tf.cast(values[target.path], target.dtype))
        elif "hint" not in target.path:
            raise ColornetError(f"init_from {name}: has no weight {target.path}")


def _init_checkpoint(path):
    """The checkpoint prefix `init_from` names: itself, or a workdir's latest."""
    if os.path.isdir(os.path.join(path, "checkpoints")):
        latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
        if latest is None:
            raise ColornetError(f"init_from {path}: the workdir has no complete checkpoint")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        from colornet.weights import pretrained

        raise ColornetError(
            f"init_from {path}: not a checkpoint prefix (no {path}.index) nor a workdir, nor a model file "
            f"(.keras, .npz), nor a pretrained name ({', '.join(sorted(pretrained.RELEASES))})"
        )
    return path


def _worker_id(strategy):
    resolver = strategy.cluster_resolver
    return resolver.task_type, resolver.task_id


def _is_chief(strategy):
    task_type, task_id = _worker_id(strategy)
    return task_type == "chief" or (task_type == "worker" and task_id == 0)


def _train_multi_worker(config, strategy):
    """Trains across workers with a custom loop over `strategy.run`.

    Keras 3.15's `fit` fails under MultiWorkerMirroredStrategy (keras-team/keras
    #20585), so this loop runs the same model, loss and optimizer: each replica's
    per-image losses are averaged over the global batch
    (`tf.nn.compute_average_loss`), regularisation is divided among replicas, and
    the Keras optimizer all-reduces the gradients. Every worker saves each
    checkpoint (a collective operation); only the chief writes into the workdir, the
    others into a scratch directory of their own (`.worker-N`, latest only).
    """
    from colornet import data

    total_steps = _total_steps(config)
    with strategy.scope():
        model = build_model(config)
    optimizer = model.optimizer
    loss_fn = model.loss
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    chief_dir = os.path.join(config.workdir, "checkpoints")
    chief = _is_chief(strategy)
    task_type, task_id = _worker_id(strategy)
    own_dir = chief_dir if chief else os.path.join(config.workdir, f".{task_type}-{task_id}")
    manager = tf.train.CheckpointManager(
        checkpoint, own_dir, max_to_keep=config.keep_checkpoints if chief else 1
    )
    latest = tf.train.latest_checkpoint(chief_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start_step = _step(optimizer)

    def dataset_fn(context):
        # Each input pipeline gets its own seed, so workers see different images.
        return data.train_dataset(
            config.data,
            batch_size=context.get_per_replica_batch_size(config.batch_size),
            crop=config.crop,
            resize=config.resize,
            seed=config.seed + start_step + 1000 * context.input_pipeline_id,
            hints=config.hints,
        )

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    def replica_step(l_raw, ab):
        with tf.GradientTape() as tape:
            logits = model(l_raw, training=True)
            loss = tf.nn.compute_average_loss(
                loss_fn.call(ab, logits), global_batch_size=config.batch_size
            )
            total = loss
            if model.losses:
                total += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    progress = keras.utils.Progbar(total_steps) if chief and config.verbose else None
    if progress:
        progress.update(start_step)
    writer = tf.summary.create_file_writer(os.path.join(config.workdir, "logs")) if chief else None
    started = time.perf_counter()
    step = start_step
    while step < total_steps:
        loss = float(train_step(iterator))
        step = _step(optimizer)
        if not math.isfinite(loss):
            raise ColornetError(
                f"the loss became NaN or Inf at step {step}; training stopped. "
                f"Last good checkpoint: {tf.train.latest_checkpoint(chief_dir)}"
            )
        if progress:
            progress.update(step, [("loss", loss)])
        if writer and step % config.log_every == 0:
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/learning_rate", _current_lr(optimizer))
        if step % config.checkpoint_every == 0 or step == total_steps:
            manager.save(checkpoint_number=step)
    result = {"step": step, "seconds": time.perf_counter() - started}
    if chief:
        result["checkpoint"] = manager.latest_checkpoint
        result["model"] = _save_final_model(_recalibrated_copy(model, config), config)
    else:
        result["checkpoint"] = manager.latest_checkpoint
    return result
