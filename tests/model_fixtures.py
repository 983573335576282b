"""Helpers shared by the model and export tests."""

import numpy as np
import tf_keras as keras


def informative(model: keras.Model, seed: int = 5) -> keras.Model:
    """Redraw every conv kernel He-normal (std sqrt(2 / fan_in)) so that each level's output carries signal.

    The reference initialisation (std 0.01) is what training starts from, but it makes the levels without
    instance norm (1 and 0) output a near-constant image, against which a comparison proves little, and
    it makes the instance norms divide variances of ~1e-8 by sqrt(1e-3 + var), where float32 rounding is
    amplified level after level (up to 6e-4 apart between two correct float32 implementations).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            weights = layer.get_weights()
            k_h, k_w, *channels = weights[0].shape
            fan_in = k_h * k_w * channels[1 if isinstance(layer, keras.layers.Conv2DTranspose) else 0]
            weights[0] = rng.normal(0.0, np.sqrt(2.0 / fan_in), weights[0].shape).astype(np.float32)
            layer.set_weights(weights)
    return model
