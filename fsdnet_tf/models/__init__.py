from fsdnet_tf.models.parallel import (ModelOutputs, ParallelCTRModel, TrainingOutputs, build_model,
                                      count_parameters)

__all__ = ["ModelOutputs", "ParallelCTRModel", "TrainingOutputs", "build_model", "count_parameters"]
