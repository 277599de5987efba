from fsdnet_tf.training.trainer import Trainer, restore_model

__all__ = ["Trainer", "restore_model"]
