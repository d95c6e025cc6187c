"""Any network as ONNX: an uploaded image classifier, read as data (never code) into its structure, keyed by
the SHA-256 of that structure (`onnx:<digest>`), and rebuilt as a PyTorch network of real layers with freshly
initialised weights. Importing the package registers the space as "onnx"."""

from search_spaces.onnx.graph import MAX_FILE_BYTES, MAX_NODES, MAX_PARAMETERS, read_graph
from search_spaces.onnx.network import OnnxNetwork, load_file_weights
from search_spaces.onnx.operators import supported_operators
from search_spaces.onnx.space import BASE64_FIELD, OnnxSpace, decode_upload
from search_spaces.onnx.structure import OnnxFileTooLarge, OnnxGraph, OnnxGraphError

__all__ = [
    "BASE64_FIELD",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_PARAMETERS",
    "OnnxFileTooLarge",
    "OnnxGraph",
    "OnnxGraphError",
    "OnnxNetwork",
    "OnnxSpace",
    "decode_upload",
    "load_file_weights",
    "read_graph",
    "supported_operators",
]
