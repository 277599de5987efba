"""fsdnet_tf: FSDNet (fusion self-distillation on DCNv2) CTR models on TensorFlow."""
from fsdnet_tf import _env  # noqa: F401  (must run before TensorFlow is imported)

__version__ = "0.1.0"
