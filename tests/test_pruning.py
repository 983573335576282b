"""Magnitude pruning (pynet_tf/pruning.py): wrapping, the custom-loop schedule, stripping, saving, TFLite.

The subject is a tiny PyNET (level 4, base width 2): SameConv2D (which tfmot's registry does not know), a
Conv2DTranspose (which it does), instance norms, the scaled tanh and the input check (which it must leave
alone), at 32x32 packed (64x64 for the TFLite conversion). The training loop is written out as
pynet_tf/trainer.py's is (a compiled step, the pruning step outside it), on level 5. The mobile ISP (width 4)
goes the same way once: wrapped, pruned in one shot, stripped, converted.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from export.formats import ExportSettings, convert_float32
from pynet_tf import pruning
from pynet_tf.layers import SameConv2D, ScaledTanh
from pynet_tf.nets.mobile.model import build_mobile
from pynet_tf.nets.pynet.layers import InputShapeCheck, InstanceNorm
from pynet_tf.nets.pynet.model import build_pynet

SPARSITY = 0.5
END_STEP = 4
FREQUENCY = 2
# A freshly wrapped model against the model it was cloned from, before any mask update: measured 0.0 (the
# masks are ones, weight * 1 is the weight). The bar leaves float32 rounding room only.
WRAPPED_ATOL = 1e-6
# The stripped model against the pruned model it came from, and after a .keras round trip: measured 0.0
# (same weights, same ops). Same bar.
STRIPPED_ATOL = 1e-6
# The stripped model's float32 TFLite file against the Keras model at 64x64: measured 2.2e-5 (outputs in
# 0.41-0.63); the dense model's own file is 6.5e-5 from it on the same input: summation order, amplified by
# the random net's eight instance norms. The bar is 1e-4.
TFLITE_ATOL = 1e-4


@pytest.fixture(scope="module")
def dense() -> keras.Model:
    keras.utils.set_random_seed(7)
    return build_pynet(4, base_filters=2)


def packed(size: int = 32, seed: int = 0) -> tf.Tensor:
    return tf.random.stateless_uniform([2, size, size, 4], seed=[seed, 0])


def wrapped_names(model: keras.Model) -> set[str]:
    return {layer.layer.name for layer in model.layers if isinstance(layer, pruning.PruneLowMagnitude)}


def tflite_output(model: keras.Model, x: tf.Tensor) -> np.ndarray:
    """The model's float32 TFLite file (the exporter's conversion) run by LiteRT on ``x`` (one 64x64 image)."""
    interpreter = Interpreter(model_content=convert_float32(model, ExportSettings(input_shape=(64, 64))))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_wraps_every_kernel_layer_and_keeps_outputs(dense):
    pruned = pruning.prunable(dense, sparsity=SPARSITY, begin_step=0, end_step=END_STEP, frequency=FREQUENCY)

    convolutions = (SameConv2D, keras.layers.Conv2DTranspose)
    kernels = {layer.name for layer in dense.layers if isinstance(layer, convolutions)}
    assert any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in dense.layers)
    assert wrapped_names(pruned) == kernels
    left_alone = (InstanceNorm, ScaledTanh, InputShapeCheck)
    assert {type(layer) for layer in pruned.layers if isinstance(layer, left_alone)} == set(left_alone)
    x = packed()
    np.testing.assert_allclose(pruned(x).numpy(), dense(x).numpy(), rtol=0, atol=WRAPPED_ATOL)
    # the input model keeps its own layers and weights
    assert not any(isinstance(layer, pruning.PruneLowMagnitude) for layer in dense.layers)


def test_custom_loop_reaches_the_target_at_end_step():
    # level 5: the compiled step through level 4 traces for 30 s here, level 5's for 14
    dense = build_pynet(5, base_filters=2)
    pruned = pruning.prunable(dense, sparsity=SPARSITY, begin_step=0, end_step=END_STEP, frequency=FREQUENCY)
    optimizer = keras.optimizers.Adam(1e-2)
    step = pruning.PruningStep(pruned)

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(pruned(x, training=True) - 0.3))
        grads = tape.gradient(loss, pruned.trainable_variables)
        optimizer.apply_gradients(zip(grads, pruned.trainable_variables))

    norms = {
        layer.name: [w.numpy() for w in layer.weights]
        for layer in pruned.layers
        if isinstance(layer, InstanceNorm)
    }
    overall = []
    for index in range(END_STEP + 2):
        step(int(optimizer.iterations.numpy()))
        train(packed(seed=index))
        overall.append(pruning.sparsity_report(pruned)["sparsity"])
    step.end()

    # update n sees step n: masks change on steps 2 and 4 (frequency 2), tfmot's cubic ramp 0 -> 43.75%
    # -> 50%, each kernel within the rounding of size * sparsity
    ramp = SPARSITY * (1 - (1 - 2 / END_STEP) ** 3)
    expected = [0.0, ramp, ramp, SPARSITY, SPARSITY, SPARSITY]
    np.testing.assert_allclose(overall, expected, rtol=0, atol=0.01)
    report = pruning.sparsity_report(pruned)
    assert set(report["weights"]) == {f"{name}/kernel" for name in wrapped_names(pruned)}
    for name, entry in report["weights"].items():
        assert abs(entry["zeros"] - SPARSITY * entry["size"]) <= 1, name  # tfmot rounds size * sparsity
    for layer in pruned.layers:
        if isinstance(layer, pruning.PruneLowMagnitude):  # end(): zeros in the kernels themselves
            kernel = layer.layer.kernel.numpy()
            assert np.count_nonzero(kernel == 0) == report["weights"][f"{layer.layer.name}/kernel"]["zeros"]
    for name, weights in norms.items():  # trained along, not pruned
        now = pruned.get_layer(name).weights
        assert not any(np.array_equal(w.numpy(), before) for w, before in zip(now, weights)), name


def test_one_shot_pruning_and_schedule_errors(dense):
    pruned = pruning.prunable(dense, sparsity=0.8, begin_step=1, end_step=1, frequency=1)
    pruning.PruningStep(pruned)(0)
    pruned(packed(), training=True)
    assert abs(pruning.sparsity_report(pruned)["sparsity"] - 0.8) < 1e-3

    with pytest.raises(ValueError, match="multiple of frequency"):
        pruning.prunable(dense, sparsity=0.5, begin_step=0, end_step=150, frequency=100)
    with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\)"):
        pruning.prunable(dense, sparsity=1.0, begin_step=0, end_step=10, frequency=1)
    with pytest.raises(ValueError, match="begin_step >= 1"):
        pruning.prunable(dense, sparsity=0.5, begin_step=0, end_step=0, frequency=1)
    inputs = keras.Input((8, 8, 4))
    with pytest.raises(ValueError, match="no layer that can be pruned"):
        pruning.prunable(
            keras.Model(inputs, InstanceNorm()(inputs)), sparsity=0.5, begin_step=0, end_step=2, frequency=1
        )
    with pytest.raises(ValueError, match="wrap it with prunable"):
        pruning.PruningStep(dense)


def test_strip_saves_loads_and_converts(dense, tmp_path):
    pruned = pruning.prunable(dense, sparsity=SPARSITY, begin_step=1, end_step=1, frequency=1)
    pruning.PruningStep(pruned)(0)
    pruned(packed(), training=True)

    plain = pruning.strip(pruned)
    assert [type(layer) for layer in plain.layers] == [type(layer) for layer in dense.layers]
    assert [layer.name for layer in plain.layers] == [layer.name for layer in dense.layers]
    assert pruning.sparsity_report(plain) == pruning.sparsity_report(pruned)
    x = packed(64)
    expected = pruned(x).numpy()
    np.testing.assert_allclose(plain(x).numpy(), expected, rtol=0, atol=STRIPPED_ATOL)
    # its own weights: pruning on leaves it as it was stripped
    pruned.layers[2].layer.kernel.assign_add(tf.ones_like(pruned.layers[2].layer.kernel))
    np.testing.assert_allclose(plain(x).numpy(), expected, rtol=0, atol=STRIPPED_ATOL)

    path = tmp_path / "pruned.keras"
    plain.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=0, atol=STRIPPED_ATOL)
    assert pruning.sparsity_report(loaded)["sparsity"] == pruning.sparsity_report(plain)["sparsity"]

    np.testing.assert_allclose(tflite_output(plain, x[:1]), expected[:1], rtol=0, atol=TFLITE_ATOL)


def test_the_mobile_isp_prunes_strips_and_converts():
    """The same path for --arch mobile: stride-2 Conv2D and SameConv2D (attention's 1x1 convs included)
    wrapped, its reductions, gates and depth_to_space left alone; 50% per kernel; stripped equals pruned."""
    keras.utils.set_random_seed(7)
    mobile = build_mobile(4)
    pruned = pruning.prunable(mobile, sparsity=SPARSITY, begin_step=1, end_step=1, frequency=1)
    kernels = {layer.name for layer in mobile.layers if isinstance(layer, keras.layers.Conv2D)}
    assert any(type(layer) is keras.layers.Conv2D for layer in mobile.layers)  # the stride-2 convs
    assert wrapped_names(pruned) == kernels
    pruning.PruningStep(pruned)(0)
    x = packed(64)
    pruned(x, training=True)
    report = pruning.sparsity_report(pruned)
    assert set(report["weights"]) == {f"{name}/kernel" for name in kernels}
    for name, entry in report["weights"].items():
        assert abs(entry["zeros"] - SPARSITY * entry["size"]) <= 1, name
    plain = pruning.strip(pruned)
    assert [layer.name for layer in plain.layers] == [layer.name for layer in mobile.layers]
    np.testing.assert_allclose(plain(x).numpy(), pruned(x).numpy(), rtol=0, atol=STRIPPED_ATOL)
    np.testing.assert_allclose(tflite_output(plain, x[:1]), plain(x[:1]).numpy(), rtol=0, atol=TFLITE_ATOL)
