"""Keras 2 (tf_keras) layers of the parallel CTR models."""
from fsdnet_tf.layers.embedding import FieldEmbedding
from fsdnet_tf.layers.fusion import Fusion
from fsdnet_tf.layers.towers import CrossStack, DeepTower, glorot_normal

__all__ = ["CrossStack", "DeepTower", "FieldEmbedding", "Fusion", "glorot_normal"]
