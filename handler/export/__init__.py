"""The export API a training script calls; see `export_model`."""

from handler.errors import ExportError
from handler.export.api import Tolerance, export_model

__all__ = ["ExportError", "Tolerance", "export_model"]
