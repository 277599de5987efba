"""Training: the trainer, the distillation trainer and their loops.

``Trainer`` and ``restore_model`` are loaded on first use, so that ``fsdnet-train`` checks
its arguments before TensorFlow is imported.
"""
__all__ = ["Trainer", "restore_model"]


def __getattr__(name: str):
    if name in __all__:
        from fsdnet_tf.training import trainer
        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
