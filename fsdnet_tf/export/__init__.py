from fsdnet_tf.export.saved_model import ExportError, ServingModule, export_run

__all__ = ["ExportError", "ServingModule", "export_run"]
