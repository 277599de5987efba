"""Process-wide settings that must be in place before TensorFlow is imported.

TFRS layers and the tf.Transform Keras layer are Keras 2 objects, so every entry
point imports this module first to select the legacy (tf_keras) implementation.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    raise RuntimeError(
        "fsdnet_tf needs Keras 2: TF_USE_LEGACY_KERAS is set to "
        f"{os.environ['TF_USE_LEGACY_KERAS']!r}; unset it or set it to 1")
