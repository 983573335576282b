"""Helpers shared by the tests of exported models."""

import numpy as np
import tf_keras as keras


def informative(model: keras.Model, seed: int = 5) -> keras.Model:
    """He-normal conv kernels, as in tests/test_model.py: outputs carry signal (the reference init's std 0.01
    gives a near-constant image, against which any file looks faithful)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            weights = layer.get_weights()
            k_h, k_w, *channels = weights[0].shape
            fan_in = k_h * k_w * channels[1 if isinstance(layer, keras.layers.Conv2DTranspose) else 0]
            weights[0] = rng.normal(0.0, np.sqrt(2.0 / fan_in), weights[0].shape).astype(np.float32)
            layer.set_weights(weights)
    return model
