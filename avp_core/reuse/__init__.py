"""Approximate reuse of shared segments under different prefixes (opt-in; see docs/segments.md).

:class:`SegmentReuse` is the switch and its settings; :class:`SegmentIndex` finds runs of a
prompt that earlier contexts computed. The torch parts (key rotation, anchors, blended
prefill) load with the Hugging Face connector.
"""

from .index import Segment, SegmentIndex, find_segments
from .policy import SegmentReuse

__all__ = ["Segment", "SegmentIndex", "SegmentReuse", "find_segments"]
