"""Model configurations, by name. Every model takes float32 RGB crops in [0, 255]; scaling
(and, during training only, augmentation) are layers of the model itself.

- ``gender_tutorial``: the gender tutorial's CNN: Conv2D+BatchNorm+MaxPool blocks,
  Dense+BatchNorm+Dropout, softmax over 2 classes, categorical cross-entropy.
- ``beard_tutorial``: the shaved/unshaved tutorial's scratch CNN: stacked 4x4 Conv2D,
  dropout, one sigmoid unit, binary cross-entropy.
- ``vgg16``: the shaved/unshaved tutorial's transfer learning: ``keras.applications.VGG16``
  (frozen) with a new head. Offline there are no ImageNet weights: pass ``--weights FILE``
  (Keras's ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``) or the base is randomly
  initialised and frozen, which is only a random-feature baseline. ~15M parameters (59 MB):
  for comparison, not for shipping.
- ``resnet``: ours: a small residual network of depthwise-separable convolutions with
  augmentation (flip, shift, zoom, contrast, brightness) and global average pooling.
- ``dlib_resnet``, ``dlib_resnet_mid``: transfer learning from dlib's face-recognition ResNet
  (``streamer.classify.face_resnet``): a small head on the backbone's features of dlib's
  aligned chip (the 128-D descriptor, or earlier layers' averaged channels). The features are
  computed once and cached (``train/features.py``); the head standardises them itself.
- ``dlib_resnet_flip``, ``dlib_resnet_flip_lr``, ``dlib_resnet_all_flip``,
  ``dlib_resnet_mid_flip``: the same on the test-time-flip features (each set averaged over
  the chip and its mirror image, in training and in the service alike), trained on the chip's
  and the mirror's own features as two rows.
- ``dlib_resnet_all``, ``dlib_resnet_wide``: more of the backbone's layers (all four feature
  sets; descriptor, pooled and mid layers under a 512-unit head), for the multi-source recipe.
- ``dlib_lower``, ``dlib_lower_cheeks``, ``dlib_lower_deep`` (``_flip``, ``_mirror``: trained on
  the mirrored chip's features too): for the beard, ``dlib_resnet_all``'s four sets and some of
  the lower-face sets (the same maps averaged over the chip's mouth and chin rows, or that
  band's sides: ``face_resnet.LOWER_FACE``); measured, not shipped.
- ``dlib_resnet_video``, ``dlib_resnet_mid_video``: ``dlib_resnet`` and ``dlib_resnet_mid``
  also trained (and early-stopped) on two video-like copies of every face (``train/degrade.py``:
  random focus blur, exposure, colour cast, sensor noise and JPEG), so that the head holds up on
  blurred, dark and compressed faces from live video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Keras's default BatchNormalization momentum (0.99) needs thousands of steps before its
# moving statistics are usable; a few epochs on a few thousand faces are only hundreds of
# steps, and validation accuracy then sits at the majority class. 0.9 converges in time.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Config:
    name: str
    input_size: tuple[int, int]  # (h, w)
    head: str  # "softmax" (one unit per class, categorical CE) or "sigmoid" (1 unit, binary CE)
    learning_rate: float
    description: str
    features: str = "pixels"  # or backbone feature names joined by '+' (face_resnet.FEATURES)
    hidden: int = 0  # feature heads: units of the hidden layer (0: logistic regression)
    # feature heads: also train on the mirrored chip's own features (one more row per face, as
    # augmentation); validation and the service use the chip's (or on "_flip" sets the flip mean).
    mirror_rows: bool = False
    l2: float = 0.0  # feature heads: L2 penalty on the output layer's weights
    # feature heads: also train on this many video-like copies of every training and validation
    # face (``train.degrade.video_like``: blur, exposure, colour, noise, JPEG), one row each
    degraded_copies: int = 0
    # beard heads: also train on the labelled real men's faces seen this many px wide
    # (``train.degrade.at_face_width``: video's smaller faces), one row each, the same labels
    small_faces: tuple[int, ...] = ()


CONFIGS: dict[str, Config] = {
    "gender_tutorial": Config(
        "gender_tutorial",
        (64, 64),
        "softmax",
        1e-3,
        "gender tutorial CNN: 3x(Conv2D+BatchNorm+MaxPool), Dense+BatchNorm+Dropout, softmax",
    ),
    "beard_tutorial": Config(
        "beard_tutorial",
        (64, 64),
        "sigmoid",
        1e-3,
        "shaved/unshaved tutorial scratch CNN: stacked 4x4 Conv2D, dropout, sigmoid",
    ),
    "vgg16": Config(
        "vgg16",
        (64, 64),
        "sigmoid",
        1e-3,
        "VGG16 base (frozen) + new Dense head; ImageNet weights only from a local file",
    ),
    "resnet": Config(
        "resnet",
        (64, 64),
        "softmax",
        2e-3,
        "small residual separable-conv net with augmentation and global average pooling",
    ),
    "dlib_resnet": Config(
        "dlib_resnet",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor + pooled layer, MLP head",
        features="dlib_face_descriptor+dlib_pooled",
        hidden=128,
    ),
    "dlib_resnet_mid": Config(
        "dlib_resnet_mid",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) mid-block + pooled layers, MLP head",
        features="dlib_level2+dlib_pooled",
        hidden=128,
    ),
    "dlib_resnet_flip": Config(
        "dlib_resnet_flip",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor + pooled layer with test-time flip, MLP head",
        features="dlib_face_descriptor_flip+dlib_pooled_flip",
        hidden=128,
        mirror_rows=True,
    ),
    "dlib_resnet_flip_lr": Config(
        "dlib_resnet_flip_lr",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor + pooled layer with test-time flip, L2 logistic regression",
        features="dlib_face_descriptor_flip+dlib_pooled_flip",
        hidden=0,
        mirror_rows=True,
        l2=2e-3,
    ),
    "dlib_resnet_all_flip": Config(
        "dlib_resnet_all_flip",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor, pooled, mid and early layers with test-time flip, MLP head",
        features="dlib_face_descriptor_flip+dlib_pooled_flip+dlib_level2_flip+dlib_level3_flip",
        hidden=128,
        mirror_rows=True,
    ),
    "dlib_resnet_mid_flip": Config(
        "dlib_resnet_mid_flip",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) mid-block + pooled layers with test-time flip, MLP head",
        features="dlib_level2_flip+dlib_pooled_flip",
        hidden=128,
        mirror_rows=True,
    ),
    "dlib_resnet_all": Config(
        "dlib_resnet_all",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor, pooled, mid and early layers, MLP head",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3",
        hidden=128,
    ),
    "dlib_resnet_all_small": Config(
        "dlib_resnet_all_small",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_resnet_all, also trained on the real men's faces seen 40 and 64 px wide (as in video)",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3",
        hidden=128,
        small_faces=(40, 64),
    ),
    "dlib_lower": Config(
        "dlib_lower",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_resnet_all's four sets and the mid and early layers averaged over the lower face, MLP head",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3+dlib_lower2+dlib_lower3",
        hidden=128,
    ),
    "dlib_lower_cheeks": Config(
        "dlib_lower_cheeks",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_lower's sets and the mid layer averaged over the lower face's sides, MLP head",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3+dlib_lower2+dlib_lower3+dlib_cheeks2",
        hidden=128,
    ),
    "dlib_lower_deep": Config(
        "dlib_lower_deep",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_resnet_all's four sets and the mid and last 4x4 layers averaged over the lower face, MLP head",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3+dlib_lower2+dlib_lower4",
        hidden=128,
    ),
    "dlib_lower_deep_flip": Config(
        "dlib_lower_deep_flip",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_lower_deep's sets with test-time flip, trained on the mirrored chip's too, MLP head",
        features="dlib_face_descriptor_flip+dlib_pooled_flip+dlib_level2_flip+dlib_level3_flip"
        "+dlib_lower2_flip+dlib_lower4_flip",
        hidden=128,
        mirror_rows=True,
    ),
    "dlib_lower_deep_mirror": Config(
        "dlib_lower_deep_mirror",
        (150, 150),
        "softmax",
        1e-3,
        "dlib_lower_deep's sets, trained on the mirrored chip's too (no flip in the service), MLP head",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2+dlib_level3+dlib_lower2+dlib_lower4",
        hidden=128,
        mirror_rows=True,
    ),
    "dlib_resnet_wide": Config(
        "dlib_resnet_wide",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor, pooled and mid layers, wide MLP head (512)",
        features="dlib_face_descriptor+dlib_pooled+dlib_level2",
        hidden=512,
    ),
    "dlib_resnet_video": Config(
        "dlib_resnet_video",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor + pooled layer, MLP head, trained on video-like copies too",
        features="dlib_face_descriptor+dlib_pooled",
        hidden=128,
        degraded_copies=2,
    ),
    "dlib_resnet_video1": Config(
        "dlib_resnet_video1",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) descriptor + pooled layer, MLP head, trained on one video-like copy too",
        features="dlib_face_descriptor+dlib_pooled",
        hidden=128,
        degraded_copies=1,
    ),
    "dlib_resnet_mid_video": Config(
        "dlib_resnet_mid_video",
        (150, 150),
        "softmax",
        1e-3,
        "dlib face ResNet (frozen) mid-block + pooled layers, MLP head, trained on video-like copies too",
        features="dlib_level2+dlib_pooled",
        hidden=128,
        degraded_copies=2,
    ),
}


def build(
    name: str,
    n_classes: int = 2,
    head: str | None = None,
    weights: str | None = None,
    seed: int = 0,
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Build (uncompiled) the model ``name`` for ``n_classes``; ``head`` overrides the config's.
    Feature configs need ``feature_stats``: the training features' (mean, variance)."""
    import keras

    if name in CONFIGS and CONFIGS[name].features != "pixels":
        return build_feature_head(CONFIGS[name], n_classes, head, seed, feature_stats)

    if name not in CONFIGS:
        raise ValueError(f"unknown model config {name!r}; choose one of {', '.join(CONFIGS)}")
    cfg = CONFIGS[name]
    head = head or cfg.head
    if head == "sigmoid" and n_classes != 2:
        head = "softmax"
    keras.utils.set_random_seed(seed)
    h, w = cfg.input_size
    inp = keras.Input((h, w, 3), name="rgb_0_255")
    if name == "gender_tutorial":
        x = keras.layers.Rescaling(1 / 255.0)(inp)
        for f in (32, 64, 128):
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = keras.layers.Dropout(0.5)(x)
    elif name == "beard_tutorial":
        x = keras.layers.Rescaling(1 / 255.0)(inp)
        for f in (32, 64):
            x = keras.layers.Conv2D(f, 4, padding="same", activation="relu")(x)
            x = keras.layers.Conv2D(f, 4, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x)
            x = keras.layers.Dropout(0.25)(x)
        x = keras.layers.Conv2D(64, 4, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(0.5)(x)
    elif name == "vgg16":
        # VGG16's own preprocessing ("caffe": RGB->BGR, ImageNet mean subtracted) as a fixed
        # 1x1 convolution, so the saved model needs no custom code.
        pre = keras.layers.Conv2D(3, 1, name="vgg16_preprocess", trainable=False)
        x = pre(inp)
        import numpy as np

        pre.set_weights(
            [
                np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3),
                -np.array([103.939, 116.779, 123.68], "float32"),
            ]
        )
        base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(h, w, 3))
        if weights:
            base.load_weights(weights)
        base.trainable = False
        x = base(x, training=False)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(256, activation="relu")(x)
        x = keras.layers.Dropout(0.5)(x)
    else:  # resnet
        x = keras.layers.RandomFlip("horizontal")(inp)
        x = keras.layers.RandomTranslation(0.06, 0.06, fill_mode="reflect")(x)
        x = keras.layers.RandomZoom((-0.08, 0.08), fill_mode="reflect")(x)
        x = keras.layers.RandomContrast(0.2)(x)
        x = keras.layers.RandomBrightness(0.15, value_range=(0, 255))(x)
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
        x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = keras.layers.Activation("relu")(x)
        for f in (64, 128, 192):
            x = _res_block(keras, x, f)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.3)(x)
    if head == "sigmoid":
        out = keras.layers.Dense(1, activation="sigmoid", name="prob")(x)
    else:
        out = keras.layers.Dense(n_classes, activation="softmax", name="prob")(x)
    return keras.Model(inp, out, name=name)


def build_feature_head(
    cfg: Config,
    n_classes: int,
    head: str | None,
    seed: int,
    feature_stats: tuple[np.ndarray, np.ndarray] | None,
):
    """Standardise (fixed mean/variance) -> [Dense(hidden, relu) + Dropout] -> sigmoid/softmax."""
    import keras

    if feature_stats is None:
        raise ValueError(f"{cfg.name}: a feature head needs the training features' mean and variance")
    mean, var = (np.asarray(a, np.float32) for a in feature_stats)
    head = head or cfg.head
    if head == "sigmoid" and n_classes != 2:
        head = "softmax"
    keras.utils.set_random_seed(seed)
    inp = keras.Input((mean.shape[0],), name=cfg.features.replace("+", "_"))
    x = keras.layers.Normalization(mean=mean, variance=np.maximum(var, 1e-6))(inp)
    if cfg.hidden:
        x = keras.layers.Dropout(0.2)(x)
        x = keras.layers.Dense(cfg.hidden, activation="relu")(x)
        x = keras.layers.Dropout(0.5)(x)
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    if head == "sigmoid":
        out = keras.layers.Dense(1, activation="sigmoid", name="prob", kernel_regularizer=reg)(x)
    else:
        out = keras.layers.Dense(n_classes, activation="softmax", name="prob", kernel_regularizer=reg)(x)
    return keras.Model(inp, out, name=cfg.name)


def _res_block(keras, x, filters: int):
    """Two separable 3x3 convs, then downsample by 2; a strided 1x1 conv on the shortcut."""
    shortcut = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
    shortcut = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    y = keras.layers.Activation("relu")(y)
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
    y = keras.layers.MaxPooling2D(3, strides=2, padding="same")(y)
    y = keras.layers.Add()([y, shortcut])
    return keras.layers.Activation("relu")(y)
