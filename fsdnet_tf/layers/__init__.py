"""Keras 2 (tf_keras) layers of the parallel CTR models: one tower family per file."""
from fsdnet_tf.layers.cin import CINTower
from fsdnet_tf.layers.cross_v1 import CrossV1Stack
from fsdnet_tf.layers.embedding import FieldEmbedding
from fsdnet_tf.layers.fusion import Fusion
from fsdnet_tf.layers.self_attention import SelfAttentionTower
from fsdnet_tf.layers.towers import CrossStack, DeepTower, glorot_normal

__all__ = ["CINTower", "CrossStack", "CrossV1Stack", "DeepTower", "FieldEmbedding", "Fusion",
           "SelfAttentionTower", "glorot_normal"]
