"""VGG-19 features for the perceptual ("content") loss, with weights read from a local file only.

The reference PyNET trains its finer levels with a content loss: the squared difference of VGG-19 (ImageNet)
activations at ``relu5_4`` between the output and the target (``pynet_tf.losses``, term ``vgg``). The
network never trains; only its weights matter, and they come from a local file (nothing is downloaded),
either of:

    vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5   Keras' ImageNet weights (looked for in the Keras
                                                         cache, $KERAS_HOME/models or ~/.keras/models)
    imagenet-vgg-verydeep-19.mat                         the reference PyNET's MatConvNet file

Both hold the same Caffe VGG-19, for the same input: 0..255 pixels minus the ImageNet mean. Keras' file
expects BGR ("caffe" preprocessing, ``tf_keras.applications.vgg19.preprocess_input``), MatConvNet's RGB, so
conv1_1's input channels are reversed when the .mat file is read and one preprocessing (``preprocess``)
serves both. Layer names are the reference's (MatConvNet's: conv1_1, relu1_1, ..., pool4, ..., relu5_4);
the Keras layers are named as in ``tf_keras.applications.VGG19`` (block1_conv1, ..., block4_pool, ...).
Only the layers up to the requested one are built, and only those need to be in the file.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import tensorflow as tf
import tf_keras as keras

KERAS_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
MATCONVNET_WEIGHTS_FILE = "imagenet-vgg-verydeep-19.mat"
DEFAULT_LAYER = "relu5_4"
"""The reference PyNET's CONTENT_LAYER."""
RANDOM_SOURCE = "random"
"""``VggFeatures.source`` of a network with random weights (``allow_random``): a smoke test, not a loss."""

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
"""ImageNet mean pixel in BGR, 0..255: Keras' caffe preprocessing. The reference PyNET subtracts the same
numbers in RGB order (its IMAGE_MEAN [123.68, 116.779, 103.939]), not the mean stored in the .mat file."""

_BLOCK_CONVS = (2, 2, 4, 4, 4)
_BLOCK_FILTERS = (64, 128, 256, 512, 512)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Layer:
    """One VGG-19 layer: its MatConvNet name, its Keras name and, for convs, its kernel's channels."""

    name: str
    keras_name: str
    channels_in: int = 0
    channels_out: int = 0

    @property
    def kind(self) -> str:
        return self.name[:4]

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return 3, 3, self.channels_in, self.channels_out


def _vgg19_layers() -> tuple[_Layer, ...]:
    """The reference's layer list: the 16 convs, their ReLUs and the first four pools (no pool5)."""
    layers = []
    channels = 3
    for block, (convs, filters) in enumerate(zip(_BLOCK_CONVS, _BLOCK_FILTERS), start=1):
        for conv in range(1, convs + 1):
            layers.append(_Layer(f"conv{block}_{conv}", f"block{block}_conv{conv}", channels, filters))
            layers.append(_Layer(f"relu{block}_{conv}", f"block{block}_relu{conv}"))
            channels = filters
        if block < len(_BLOCK_CONVS):
            layers.append(_Layer(f"pool{block}", f"block{block}_pool"))
    return tuple(layers)


_LAYERS = _vgg19_layers()
LAYERS: tuple[str, ...] = tuple(layer.name for layer in _LAYERS)


class VggWeightsError(OSError):
    """VGG-19 weights that cannot be used: unreadable, of an unknown kind, or missing a layer or of the wrong
    shape; the message names the file and what is wrong."""


class VggWeightsNotFoundError(VggWeightsError, FileNotFoundError):
    """No VGG-19 weights file: none given and none in the Keras cache, or the given path does not exist."""


def keras_cache_path() -> Path:
    """Where Keras keeps its ImageNet VGG-19 weights: in ``$KERAS_HOME/models``, else ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras", "models", KERAS_WEIGHTS_FILE).expanduser()


def weights_help() -> str:
    """Which weight files the VGG loss takes and where they go; the tail of every 'not found' message."""
    return (
        f"The VGG-19 loss needs ImageNet weights, read from a local file: Keras' {KERAS_WEIGHTS_FILE} "
        f"(put it at {keras_cache_path()} to have it found) or the reference PyNET's MatConvNet "
        f"{MATCONVNET_WEIGHTS_FILE}; pass either with --vgg-weights PATH. --allow-random-vgg uses random "
        "weights instead: for smoke tests only, the loss then measures nothing meaningful."
    )


def preprocess(images: tf.Tensor) -> tf.Tensor:
    """sRGB in [0, 1] -> Keras' caffe VGG input: x * 255, RGB -> BGR, minus the ImageNet BGR mean."""
    images = tf.cast(images, tf.float32)
    return images[..., ::-1] * 255.0 - tf.constant(CAFFE_BGR_MEAN, tf.float32)


class VggFeatures:
    """sRGB images in [0, 1], (n, h, w, 3) -> activations of VGG-19 layer ``layer``; differentiable.

    ``model`` is the frozen VGG-19 up to ``layer`` (caffe BGR input); ``source`` is the weights file it was
    loaded from, or ``RANDOM_SOURCE``.
    """

    def __init__(self, model: keras.Model, layer: str, source: str) -> None:
        self.model = model
        self.layer = layer
        self.source = source

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return self.model(preprocess(images), training=False)


def load_vgg_features(
    layer: str = DEFAULT_LAYER, weights: str | Path | None = None, *, allow_random: bool = False
) -> VggFeatures:
    """VGG-19 up to ``layer`` with the weights of ``weights`` (.h5 Keras, .mat MatConvNet).

    ``weights=None`` takes Keras' file from its cache (``keras_cache_path()``); without it, random weights
    if ``allow_random`` (logged as a warning), else ``VggWeightsNotFoundError``.
    """
    if layer not in LAYERS:
        close = difflib.get_close_matches(layer, LAYERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown VGG-19 layer {layer!r}{hint}; layers: {', '.join(LAYERS)}")
    path = _weights_path(weights, allow_random)
    layers = _LAYERS[: LAYERS.index(layer) + 1]
    model = _build(layers, name=f"vgg19_{layer}")
    if path is None:
        _log.warning("VGG-19 has random weights (--allow-random-vgg): the vgg loss term is meaningless")
        return VggFeatures(model, layer, RANDOM_SOURCE)
    for keras_name, kernel, bias in _read_weights(path, [spec for spec in layers if spec.kind == "conv"]):
        model.get_layer(keras_name).set_weights([kernel, bias])
    return VggFeatures(model, layer, str(path))


def _build(layers: tuple[_Layer, ...], name: str) -> keras.Model:
    """Frozen VGG-19 layers as Keras' VGG19, but each ReLU a layer of its own (so that conv*_* outputs
    exist) and 'same' max-pools as the reference's (equal to Keras' 'valid' ones on even sizes)."""
    inputs = keras.Input((None, None, 3))
    x = inputs
    for spec in layers:
        if spec.kind == "conv":
            x = keras.layers.Conv2D(spec.channels_out, 3, padding="same", name=spec.keras_name)(x)
        elif spec.kind == "relu":
            x = keras.layers.ReLU(name=spec.keras_name)(x)
        else:
            x = keras.layers.MaxPooling2D(2, padding="same", name=spec.keras_name)(x)
    model = keras.Model(inputs, x, name=name)
    model.trainable = False
    return model


def _weights_path(weights: str | Path | None, allow_random: bool) -> Path | None:
    """The file to read, or None for random weights; checked before VGG-19 is built."""
    if weights is None:
        cached = keras_cache_path()
        if cached.is_file():
            return cached
        if allow_random:
            return None
        raise VggWeightsNotFoundError(f"no VGG-19 weights given, none in the Keras cache. {weights_help()}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise VggWeightsNotFoundError(f"VGG-19 weights file {path} does not exist. {weights_help()}")
    if path.suffix.lower() not in (".h5", ".hdf5", ".mat"):
        raise VggWeightsError(
            f"{path}: unknown kind of VGG-19 weights file; expected Keras' .h5 ({KERAS_WEIGHTS_FILE}) or "
            f"MatConvNet's .mat ({MATCONVNET_WEIGHTS_FILE})"
        )
    return path


# A reader gives, for each conv, its name in the file, its kernel (3, 3, in, out) for BGR input and its bias.
_ConvWeights = list[tuple[str, np.ndarray, np.ndarray]]


def _read_weights(path: Path, convs: list[_Layer]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(Keras layer name, float32 kernel, float32 bias) of each conv, checked against the conv's shapes."""
    reader = _read_matconvnet if path.suffix.lower() == ".mat" else _read_keras_h5
    checked = []
    for spec, (name_in_file, kernel, bias) in zip(convs, reader(path, convs)):
        for what, array, expected in (
            ("kernel", kernel, spec.kernel_shape),
            ("bias", bias, (spec.channels_out,)),
        ):
            if array.shape != expected:
                raise VggWeightsError(
                    f"{path}: layer {name_in_file!r} has a {what} of shape {array.shape}, expected {expected}"
                )
        checked.append((spec.keras_name, kernel.astype(np.float32), bias.astype(np.float32)))
    return checked


def _missing(path: Path, name_in_file: str, spec: _Layer) -> VggWeightsError:
    return VggWeightsError(
        f"{path}: no weights for layer {name_in_file!r} (expected kernel {spec.kernel_shape} and bias "
        f"({spec.channels_out},)); the file must hold every conv up to the requested layer"
    )


def _read_keras_h5(path: Path, convs: list[_Layer]) -> _ConvWeights:
    """Keras' h5 weights format: root attribute ``layer_names``; a group a layer, whose attribute
    ``weight_names`` names its datasets (kernel, then bias)."""
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise VggWeightsError(f"{path}: cannot read it as Keras h5 weights ({error})") from error
    with file:
        if "layer_names" not in file.attrs:
            raise VggWeightsError(f"{path}: not a Keras weights file (no 'layer_names' attribute)")
        layer_names = _decoded(file.attrs["layer_names"])
        weights = []
        for spec in convs:
            if spec.keras_name not in layer_names:
                raise _missing(path, spec.keras_name, spec)
            group = file[spec.keras_name]
            values = [np.asarray(group[name]) for name in _decoded(group.attrs.get("weight_names", []))]
            if len(values) != 2:
                raise VggWeightsError(
                    f"{path}: layer {spec.keras_name!r} has {len(values)} weights, expected kernel and bias"
                )
            weights.append((spec.keras_name, *values))
    return weights


def _decoded(names: np.ndarray) -> list[str]:
    """An h5py string-list attribute as str (h5py gives bytes for Keras' fixed-length strings)."""
    return [name.decode("utf8") if isinstance(name, bytes) else str(name) for name in names]


def _read_matconvnet(path: Path, convs: list[_Layer]) -> _ConvWeights:
    """MatConvNet's simplenn file: ``layers``, a cell of structs with a field ``name`` and, for convs,
    ``weights`` = {kernel (width, height, in, out), bias}.

    Fields are read by name: the reference PyNET's file (MatConvNet beta16) orders them (weights, pad, type,
    name, stride), hence its ``weights[i][0][0][0][0]``; the later one on MatConvNet's site (name, type,
    weights, ...). The kernel is transposed to TF's (height, width, in, out), as the reference does, and
    conv1_1's input channels go from RGB to BGR.
    """
    try:
        cells = scipy.io.loadmat(path, variable_names=["layers"])["layers"][0]
    except (OSError, ValueError, KeyError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise VggWeightsError(f"{path}: cannot read it as a MatConvNet network ({error!r})") from error
    records = {}
    for cell in cells:
        record = cell[0, 0]
        if "name" in (record.dtype.names or ()):
            records[str(record["name"][0])] = record
    weights = []
    for spec in convs:
        record = records.get(spec.name)
        if record is None or "weights" not in record.dtype.names or record["weights"].size != 2:
            raise _missing(path, spec.name, spec)
        kernel, bias = record["weights"][0]
        kernel = np.transpose(kernel, (1, 0, 2, 3))
        if spec.channels_in == 3:
            kernel = kernel[:, :, ::-1, :]
        weights.append((spec.name, kernel, bias.reshape(-1)))
    return weights
