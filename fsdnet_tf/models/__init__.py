from fsdnet_tf.models.parallel import ParallelCTRModel, TrainingOutputs, build_model

__all__ = ["ParallelCTRModel", "TrainingOutputs", "build_model"]
