"""Any network as ONNX, as a `SearchSpace`: an architecture is the structure of an uploaded file, written
`onnx:<digest>` (the SHA-256 of the structure, `structure.structure_digest`), and its network is rebuilt from
that structure with freshly initialised weights.

The text names a file that must be at hand to build the network: `parse` of the file's bytes (or of
`{"onnx_base64": ...}`) reads and checks it and keeps its structure in this process, after which the text
builds. The service stores each file once per digest and hands its bytes to whichever worker scores it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import ClassVar

from search_spaces.base import HyperParameter, NetworkSize, SearchSpace, register_space
from search_spaces.onnx.example import EXAMPLE_DIGEST, example_model
from search_spaces.onnx.graph import MAX_FILE_BYTES, MAX_PARAMETERS, MAX_SAVED_FLOATS_PER_IMAGE, read_graph
from search_spaces.onnx.network import OnnxNetwork
from search_spaces.onnx.structure import OnnxFileTooLarge, OnnxGraph

PREFIX = "onnx:"
ARCH_PATTERN = re.compile(r"onnx:[0-9a-f]{64}")
BASE64_FIELD = "onnx_base64"
KEPT_GRAPHS = 32
"""Structures kept per process (a few kilobytes each without the weights, which are never kept)."""
NEEDS_CELLS = (
    "AZ-NAS reads the outputs of a network's stem and of each of its cells, and an ONNX graph does not say "
    "where its cells are"
)


@register_space
class OnnxSpace(SearchSpace):
    """Networks uploaded as ONNX files; every structure is its own isomorphism class (two different graphs
    are not matched up to relabelling), so the same structure posted twice — or with other weights — is one
    architecture, scored once."""

    name = "onnx"
    title = "any network as an ONNX file (the image classifier's structure; weights re-initialised)"
    size = None
    example = PREFIX + EXAMPLE_DIGEST
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]] = {}  # the file fixes the network
    unsupported_proxies: ClassVar[Mapping[str, str]] = {
        "az_expressivity": NEEDS_CELLS,
        "az_progressivity": NEEDS_CELLS,
        "az_trainability": NEEDS_CELLS,
    }
    singleton_classes = True

    def __init__(self) -> None:
        self._graphs: OrderedDict[str, OnnxGraph] = OrderedDict()
        self._files: OrderedDict[str, str] = OrderedDict()  # SHA-256 of a file's bytes -> its architecture
        self._lock = threading.Lock()

    def parse(self, arch: object) -> str:
        """`onnx:<digest>` for an ONNX file's bytes, `{"onnx_base64": "<the file in base64>"}` or the text
        itself (any case, surrounding whitespace ignored). Reading a file keeps its structure in this
        process; a text is only checked for its form, since what it names is stored by the service."""
        if isinstance(arch, bytes | bytearray | memoryview):
            return self.load(bytes(arch)).arch
        if isinstance(arch, dict):
            return self.load(decode_upload(arch)).arch
        if isinstance(arch, str):
            text = arch.strip().lower()
            if not ARCH_PATTERN.fullmatch(text):
                raise ValueError(
                    f"an ONNX architecture is {PREFIX}<64 hex digits> (the digest of one already stored) or "
                    f'{{"{BASE64_FIELD}": "<the file in base64>"}}, got {_shorten(arch)}'
                )
            return text
        raise ValueError(
            f"cannot read an ONNX architecture from {type(arch).__name__} {_shorten(arch)}: expected the "
            f'file as {{"{BASE64_FIELD}": "..."}} or its text {PREFIX}<digest>'
        )

    def load(self, data: bytes) -> OnnxGraph:
        """The file's checked structure, kept in this process so that its text builds (read once per file)."""
        file_digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            arch = self._files.get(file_digest)
            if arch is not None and arch in self._graphs:
                self._files.move_to_end(file_digest)
                self._graphs.move_to_end(arch)
                return self._graphs[arch]
        graph = read_graph(data)
        with self._lock:
            self._graphs[graph.arch] = graph
            self._files[file_digest] = graph.arch
            for kept in (self._graphs, self._files):
                while len(kept) > KEPT_GRAPHS:
                    kept.popitem(last=False)
        return graph

    def graph(self, arch: str) -> OnnxGraph:
        """The structure `arch` names; a ValueError when its file was not read in this process."""
        text = self.parse(arch)
        with self._lock:
            graph = self._graphs.get(text)
        if graph is None and text == self.example:
            graph = self.load(example_model())
        if graph is None:
            raise ValueError(f"the ONNX file of {text} is not at hand in this process; its bytes must come with it")
        return graph

    def canonical_key(self, arch: str) -> str:
        return self.parse(arch)

    def build_model(self, arch: str, num_classes: int, **hyper_parameters: int) -> OnnxNetwork:
        self.model_options(hyper_parameters)  # refuses any option: there are none
        graph = self.graph(arch)
        if num_classes != graph.num_classes:
            raise ValueError(f"the ONNX network puts out {graph.num_classes} logits, not {num_classes} (the classes)")
        return OnnxNetwork(graph)

    def sample(self, n: int, seed: int) -> list[str]:
        raise ValueError("onnx architectures are uploaded, not drawn: the space cannot be sampled or listed")

    def network_size(self, num_classes: int, image_size: int, **hyper_parameters: int) -> NetworkSize:
        """The largest network the space accepts. The service checks a network it has read against its own
        size instead (`OnnxGraph.parameter_count` and `saved_floats_per_image`)."""
        self.model_options(hyper_parameters)
        return NetworkSize(MAX_PARAMETERS, MAX_SAVED_FLOATS_PER_IMAGE)


def decode_upload(upload: dict[object, object]) -> bytes:
    """The file's bytes from `{"onnx_base64": "..."}`; a ValueError naming what is wrong otherwise."""
    if set(upload) != {BASE64_FIELD} or not isinstance(upload[BASE64_FIELD], str):
        raise ValueError(
            f'an ONNX file is given as {{"{BASE64_FIELD}": "<the file in base64>"}}, got {_shorten(upload)}'
        )
    text = upload[BASE64_FIELD]
    assert isinstance(text, str)
    if len(text) > 4 * (-(-MAX_FILE_BYTES // 3)) + 4:
        raise OnnxFileTooLarge(f"{BASE64_FIELD} is over the limit of {MAX_FILE_BYTES:,} bytes once decoded")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{BASE64_FIELD} is not valid base64") from None


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
