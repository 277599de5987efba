from fsdnet_tf.export.saved_model import HEADS_ALIASES, ExportError, ServingModule, export_run

__all__ = ["HEADS_ALIASES", "ExportError", "ServingModule", "export_run"]
