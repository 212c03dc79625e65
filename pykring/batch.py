"""What a read of several record types returns: :class:`Batch`, the records
of one drain by type name (with its bridges to Arrow and pandas), and ``R``,
what a :class:`~pykring.Ring` yields."""
from typing import Any, Dict, Iterator, Mapping, TypeVar, Union

import numpy as np


class Batch(Mapping[str, np.ndarray]):
    """Records of one drain, by record type name. Every type of the ring is a
    key; types with no records map to empty arrays."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Dict[str, np.ndarray]):
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def count(self) -> int:
        """Records in the batch, all types together (the sum of the arrays'
        lengths); 0 for an empty batch, which is then false."""
        return sum(len(a) for a in self._arrays.values())

    def __bool__(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        return "Batch(%s)" % ", ".join("%s=%d" % (k, len(v)) for k, v in self._arrays.items())

    def to_arrow(self, binary: bool = False) -> Dict[str, Any]:
        """``{type name: pyarrow.RecordBatch}``: ``ts`` as timestamp[ns, UTC],
        ``S`` fields as strings (``binary=True``: bytes), subarrays as
        fixed-size lists, a kernel process_start's command line as ``argv``
        (list<string>). The rules: :mod:`pykring.arrow`. Needs
        ``pip install 'pykring[arrow]'``."""
        from .arrow import batch_to_arrow

        return batch_to_arrow(self, binary)

    def to_pandas(self, binary: bool = False) -> Dict[str, Any]:
        """``{type name: pandas.DataFrame}``, through :meth:`to_arrow`.
        Needs ``pip install 'pykring[pandas]'``."""
        from .arrow import batch_to_pandas

        return batch_to_pandas(self, binary)


#: What a :class:`Ring` yields when iterated (and :meth:`Ring.aread` returns):
#: ``np.ndarray`` for a ring of one record type, :class:`Batch` for several.
#: Only for type checkers: ``Ring[Batch]`` and ``Ring[np.ndarray]`` are the
#: same class at run time.
R = TypeVar("R", bound=Union[np.ndarray, Batch])
