"""FLOP counts from layer shapes against TensorFlow's own profiler and the reference PyNET's published size."""

import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from pynet_tf.flops import forward_flops
from pynet_tf.nets.pynet.model import build_pynet


def profiler_flops(model) -> int:
    """tf.compat.v1.profiler's float-operation count of the frozen forward graph (an independent count)."""
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    graph = convert_variables_to_constants_v2(tf.function(model).get_concrete_function(spec)).graph
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()
        .build()
    )
    return tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options).total_float_ops


@pytest.mark.parametrize("level", [0, 3])
def test_layer_count_matches_the_tensorflow_profiler(level):
    """Measured 0.1-0.23% apart at every level (the profiler counts a few element-wise ops of its own)."""
    model = build_pynet(level, base_filters=4, input_shape=(64, 64, 4))
    assert forward_flops(model) == pytest.approx(profiler_flops(model), rel=5e-3)


def test_full_width_level_0_is_the_reference_size():
    """The official PyNET graph: ~672 GFLOP for one 224x224 packed patch at full width, as measured."""
    model = build_pynet(0, base_filters=32, input_shape=(224, 224, 4))
    assert forward_flops(model) / 1e9 == pytest.approx(672, rel=2e-3)


def test_dynamic_sizes_are_refused_unless_a_size_is_given():
    dynamic = build_pynet(3, base_filters=2)
    with pytest.raises(ValueError, match="fixed input size"):
        forward_flops(dynamic)
    assert forward_flops(dynamic, (64, 48)) == forward_flops(
        build_pynet(3, base_filters=2, input_shape=(64, 48, 4))
    )
