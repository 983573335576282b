"""VGG-19 features from tiny weight files written as the real ones are: Keras' notop h5 against Keras' own
VGG19, MatConvNet's .mat (both layouts) against the h5, and the errors for every way a file can be wrong."""

import logging

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tf_keras as keras

from pynet_tf import vgg
from pynet_tf.losses import Loss

# The reference PyNET's vgg.py layer list, written out: the names users pass to --vgg-layer.
REFERENCE_LAYERS = (
    "conv1_1",
    "relu1_1",
    "conv1_2",
    "relu1_2",
    "pool1",
    "conv2_1",
    "relu2_1",
    "conv2_2",
    "relu2_2",
    "pool2",
    "conv3_1",
    "relu3_1",
    "conv3_2",
    "relu3_2",
    "conv3_3",
    "relu3_3",
    "conv3_4",
    "relu3_4",
    "pool3",
    "conv4_1",
    "relu4_1",
    "conv4_2",
    "relu4_2",
    "conv4_3",
    "relu4_3",
    "conv4_4",
    "relu4_4",
    "pool4",
    "conv5_1",
    "relu5_1",
    "conv5_2",
    "relu5_2",
    "conv5_3",
    "relu5_3",
    "conv5_4",
    "relu5_4",
)
# (MatConvNet name, Keras name, input channels, output channels) of the convs the tiny files hold.
CONVS = (
    ("conv1_1", "block1_conv1", 3, 64),
    ("conv1_2", "block1_conv2", 64, 64),
    ("conv2_1", "block2_conv1", 64, 128),
)
# Keras' notop file lists the input and the pools too, with no weights.
KERAS_LAYER_NAMES = ("input_2", "block1_conv1", "block1_conv2", "block1_pool", "block2_conv1")
MATCONVNET_LAYOUTS = ("beta16", "current")
SIZE = 32  # even, so the reference's 'same' pools and Keras' 'valid' ones agree

# Same weights, same float32 convolutions, different graphs (ours splits each ReLU off its conv): the sums
# of up to 3*3*64 = 576 products may be ordered differently, ~sqrt(576) * 6e-8 = 1.4e-6 of the largest
# activation. 1e-5 of it leaves room for that and nothing else: a single wrong weight moves far more.
# Measured on CPU: 0 (the same kernels run).
FEATURE_TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _empty_keras_cache(tmp_path, monkeypatch):
    """No test sees a VGG-19 file the machine may have in ~/.keras."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def make_weights(convs=CONVS, seed=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Keras name -> (kernel (3, 3, in, out) for BGR input, bias): He-scaled, so activations stay O(100)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for _, keras_name, channels_in, channels_out in convs:
        kernel = rng.normal(0, np.sqrt(2 / (9 * channels_in)), (3, 3, channels_in, channels_out))
        weights[keras_name] = kernel.astype(np.float32), rng.normal(0, 1, channels_out).astype(np.float32)
    return weights


def write_keras_h5(path, weights, layer_names=KERAS_LAYER_NAMES):
    """As Keras' notop file (Keras 1 era): byte-string attributes, datasets named <layer>_W_1:0 / _b_1:0."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [name.encode() for name in layer_names]
        for name in layer_names:
            group = file.create_group(name)
            names = [f"{name}_W_1:0", f"{name}_b_1:0"] if name in weights else []
            group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for dataset, value in zip(names, weights.get(name, ())):
                group.create_dataset(dataset, data=value)
    return path


def cell(*items) -> np.ndarray:
    """A 1 x n MATLAB cell array for scipy.io.savemat."""
    array = np.empty((1, len(items)), dtype=object)
    for index, item in enumerate(items):
        array[0, index] = item
    return array


def write_matconvnet(path, weights, layout, names=REFERENCE_LAYERS[:6]):
    """MatConvNet's ``layers`` cell of structs, conv weights as (width, height, in, out) for RGB input.

    beta16 (the reference PyNET's file) orders a conv's fields (weights, pad, type, name, stride) and stores
    biases as 1 x n; the file now on MatConvNet's site (name, type, weights, size, pad, stride, ...), n x 1.
    """
    keras_names = {name: keras_name for name, keras_name, _, _ in CONVS}
    layers = []
    for name in names:
        if not name.startswith("conv"):  # relu and pool: only the field order matters here
            fields = {"type": name[:4], "name": name}
            layers.append(fields if layout == "beta16" else dict(reversed(fields.items())))
            continue
        kernel, bias = weights[keras_names[name]]
        if name == "conv1_1":
            kernel = kernel[:, :, ::-1, :]  # MatConvNet's VGG takes RGB
        kernel = np.transpose(kernel, (1, 0, 2, 3))
        pad, stride = np.ones((1, 4)), np.ones((1, 2))
        if layout == "beta16":
            layers.append(
                {
                    "weights": cell(kernel, bias[None, :]),
                    "pad": pad,
                    "type": "conv",
                    "name": name,
                    "stride": stride,
                }
            )
        else:
            layers.append(
                {
                    "name": name,
                    "type": "conv",
                    "weights": cell(kernel, bias[:, None]),
                    "size": np.array([kernel.shape], float),
                    "pad": pad,
                    "stride": stride,
                }
            )
    scipy.io.savemat(path, {"layers": cell(*layers)})
    return path


@pytest.fixture(scope="module")
def keras_vgg19():
    """Keras' own VGG-19 (no top, random): the independent reference, built once."""
    return keras.applications.VGG19(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))


def images(count=2, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, SIZE, SIZE, 3), dtype=np.float32)


def test_layer_names_are_the_references():
    assert vgg.LAYERS == REFERENCE_LAYERS
    assert vgg.DEFAULT_LAYER == "relu5_4"


def test_preprocess_is_keras_caffe_preprocessing():
    x = images()
    expected = keras.applications.vgg19.preprocess_input(x * 255.0)
    # the same three float32 operations on 0..255 values; ~3e-5 is one ulp at 255
    np.testing.assert_allclose(vgg.preprocess(x).numpy(), expected, atol=1e-4, rtol=0)


def test_full_network_maps_onto_keras_vgg19_by_name(keras_vgg19):
    """Every conv of Keras' notop VGG-19 (what its weight file holds) has a namesake of the same shapes."""
    features = vgg.load_vgg_features(allow_random=True)
    keras_convs = [layer for layer in keras_vgg19.layers if layer.weights]
    ours = {layer.name: layer for layer in features.model.layers if layer.weights}
    assert sorted(ours) == sorted(layer.name for layer in keras_convs)
    for layer in keras_convs:
        assert [w.shape for w in ours[layer.name].weights] == [w.shape for w in layer.weights]
    assert features.model.count_params() == keras_vgg19.count_params() == 20_024_384


@pytest.mark.parametrize(
    "layer, keras_layer", [("relu1_2", "block1_conv2"), ("pool1", "block1_pool"), ("relu2_1", "block2_conv1")]
)
def test_h5_features_equal_keras_vgg19(tmp_path, keras_vgg19, layer, keras_layer):
    weights = make_weights()
    path = write_keras_h5(tmp_path / vgg.KERAS_WEIGHTS_FILE, weights)
    keras_vgg19.load_weights(path, by_name=True)
    for name, (kernel, bias) in weights.items():  # by_name skips silently: make sure Keras did load them
        np.testing.assert_array_equal(keras_vgg19.get_layer(name).kernel.numpy(), kernel)
    reference = keras.Model(keras_vgg19.input, keras_vgg19.get_layer(keras_layer).output)
    x = images()
    expected = reference(keras.applications.vgg19.preprocess_input(x * 255.0)).numpy()

    features = vgg.load_vgg_features(layer, path)
    assert features.source == str(path) and features.layer == layer
    actual = features(x).numpy()
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= FEATURE_TOLERANCE * np.abs(expected).max()


@pytest.mark.parametrize("layout", MATCONVNET_LAYOUTS)
def test_matconvnet_writer_matches_the_references_indexing(tmp_path, layout):
    """The test files have the structure the known readers index into, so the loader is tested on it."""
    weights = make_weights()
    layers = scipy.io.loadmat(write_matconvnet(tmp_path / "vgg.mat", weights, layout))["layers"][0]
    if layout == "beta16":  # the reference PyNET's vgg.py: kernels, bias = weights[i][0][0][0][0]
        kernels, bias = layers[2][0][0][0][0]
    else:  # readers of MatConvNet's current file: name at [i][0][0][0][0], weights at [i][0][0][2][0]
        assert layers[2][0][0][0][0] == "conv1_2"
        kernels, bias = layers[2][0][0][2][0]
    np.testing.assert_array_equal(np.transpose(kernels, (1, 0, 2, 3)), weights["block1_conv2"][0])
    np.testing.assert_array_equal(bias.reshape(-1), weights["block1_conv2"][1])


@pytest.mark.parametrize("layout", MATCONVNET_LAYOUTS)
def test_mat_features_equal_h5_features(tmp_path, layout):
    """Same weights in MatConvNet's layout (transposed, RGB input): the transpose and the channel flip undone,
    the network is the h5 one bit for bit."""
    weights = make_weights()
    from_h5 = vgg.load_vgg_features("relu2_1", write_keras_h5(tmp_path / "vgg.h5", weights))
    from_mat = vgg.load_vgg_features("relu2_1", write_matconvnet(tmp_path / "vgg.mat", weights, layout))
    for ours, theirs in zip(from_mat.model.weights, from_h5.model.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = images()
    np.testing.assert_array_equal(from_mat(x).numpy(), from_h5(x).numpy())


def test_weights_from_the_keras_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_HOME", str(cache))
    assert vgg.keras_cache_path() == cache / "models" / vgg.KERAS_WEIGHTS_FILE
    (cache / "models").mkdir(parents=True)
    write_keras_h5(vgg.keras_cache_path(), make_weights())
    features = vgg.load_vgg_features("relu1_1", allow_random=True)  # a file is there: random is not used
    assert features.source == str(vgg.keras_cache_path())
    np.testing.assert_array_equal(
        features.model.get_layer("block1_conv1").kernel.numpy(), make_weights()["block1_conv1"][0]
    )


def assert_explains_where_weights_go(message: str):
    for words in (
        vgg.KERAS_WEIGHTS_FILE,
        vgg.MATCONVNET_WEIGHTS_FILE,
        str(vgg.keras_cache_path()),
        "--vgg-weights",
        "--allow-random-vgg",
        "smoke tests only",
    ):
        assert words in message


def test_no_weights_and_no_allow_random_is_one_clear_error():
    with pytest.raises(vgg.VggWeightsNotFoundError) as error:
        vgg.load_vgg_features()
    assert isinstance(error.value, FileNotFoundError)
    assert_explains_where_weights_go(str(error.value))


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere" / vgg.MATCONVNET_WEIGHTS_FILE
    with pytest.raises(vgg.VggWeightsNotFoundError, match="does not exist") as error:
        vgg.load_vgg_features(weights=path, allow_random=True)  # a path given never falls back to random
    assert str(path) in str(error.value)
    assert_explains_where_weights_go(str(error.value))


@pytest.mark.parametrize("kind, name_in_file", [("h5", "block2_conv1"), ("mat", "conv2_1")])
def test_missing_layer_names_file_layer_and_shape(tmp_path, kind, name_in_file):
    shallow = make_weights(CONVS[:2])  # conv1_1 and conv1_2 only
    if kind == "h5":
        path = write_keras_h5(tmp_path / "vgg.h5", shallow, KERAS_LAYER_NAMES[:3])
    else:
        path = write_matconvnet(tmp_path / "vgg.mat", shallow, "beta16", REFERENCE_LAYERS[:4])
    assert vgg.load_vgg_features("pool1", path).source == str(path)  # enough for the layers up to pool1
    with pytest.raises(vgg.VggWeightsError) as error:
        vgg.load_vgg_features("relu2_1", path)
    for words in (str(path), repr(name_in_file), "(3, 3, 64, 128)"):
        assert words in str(error.value)


@pytest.mark.parametrize("kind, name_in_file", [("h5", "block1_conv2"), ("mat", "conv1_2")])
def test_wrong_shape_names_file_layer_and_shapes(tmp_path, kind, name_in_file):
    weights = make_weights()
    kernel, bias = weights["block1_conv2"]
    weights["block1_conv2"] = (kernel[..., :32], bias)
    if kind == "h5":
        path = write_keras_h5(tmp_path / "vgg.h5", weights)
    else:
        path = write_matconvnet(tmp_path / "vgg.mat", weights, "beta16")
    with pytest.raises(vgg.VggWeightsError) as error:
        vgg.load_vgg_features("relu2_1", path)
    for words in (str(path), repr(name_in_file), "(3, 3, 64, 32)", "expected (3, 3, 64, 64)"):
        assert words in str(error.value)


def test_unknown_suffix_names_the_accepted_kinds(tmp_path):
    path = tmp_path / "vgg19.pth"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(vgg.VggWeightsError) as error:
        vgg.load_vgg_features(weights=path)
    for words in (str(path), ".h5", vgg.KERAS_WEIGHTS_FILE, ".mat", vgg.MATCONVNET_WEIGHTS_FILE):
        assert words in str(error.value)


@pytest.mark.parametrize("suffix", [".h5", ".mat"])
def test_unreadable_file_names_it(tmp_path, suffix):
    path = tmp_path / f"vgg{suffix}"
    path.write_bytes(b"not a weights file" * 10)
    with pytest.raises(vgg.VggWeightsError, match="cannot read") as error:
        vgg.load_vgg_features("relu1_1", path)
    assert str(path) in str(error.value)


def test_random_weights_are_marked_logged_and_seeded(caplog):
    with caplog.at_level(logging.WARNING, logger="pynet_tf.vgg"):
        features = vgg.load_vgg_features("relu1_2", allow_random=True)
    assert features.source == vgg.RANDOM_SOURCE
    assert "random" in caplog.text and "--allow-random-vgg" in caplog.text
    keras.utils.set_random_seed(1234)  # as the autouse fixture did before the first load
    again = vgg.load_vgg_features("relu1_2", allow_random=True)
    for first, second in zip(features.model.weights, again.model.weights):
        np.testing.assert_array_equal(first.numpy(), second.numpy())


def test_vgg_never_trains_and_passes_gradients_to_its_input(tmp_path):
    features = vgg.load_vgg_features("relu2_1", write_keras_h5(tmp_path / "vgg.h5", make_weights()))
    assert features.model.trainable_weights == []
    assert len(features.model.non_trainable_weights) == 2 * len(CONVS)
    target = tf.constant(images(seed=2))
    prediction = tf.Variable(images(seed=3))
    with tf.GradientTape() as tape:
        total, terms = Loss({"vgg": 1.0}, vgg=features)(target, prediction)
    gradient = tape.gradient(total, prediction).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0
    assert float(terms["vgg"]) > 0
    assert float(Loss({"vgg": 1.0}, vgg=features)(target, target)[0]) == 0.0


@pytest.mark.parametrize(
    "layer, last, size, channels",
    [
        ("conv1_1", "block1_conv1", SIZE, 64),
        ("relu1_2", "block1_relu2", SIZE, 64),
        ("pool1", "block1_pool", SIZE // 2, 64),
        ("relu2_1", "block2_relu1", SIZE // 2, 128),
    ],
)
def test_layer_selection_builds_up_to_that_layer(layer, last, size, channels):
    features = vgg.load_vgg_features(layer, allow_random=True)
    assert features.layer == layer
    assert features.model.layers[-1].name == last
    assert features(images()).shape == (2, size, size, channels)


def test_conv_layer_is_before_its_relu(tmp_path):
    features = vgg.load_vgg_features("conv1_1", write_keras_h5(tmp_path / "vgg.h5", make_weights()))
    assert features(images()).numpy().min() < 0  # relu1_1 would clip these


def test_unknown_layer_suggests_the_nearest():
    with pytest.raises(ValueError, match=r"did you mean 'relu2_1'\?.*conv1_1, relu1_1") as error:
        vgg.load_vgg_features("rellu2_1", allow_random=True)
    assert "relu5_4" in str(error.value)
