"""Compact columns and their serialisation: packed strings, CSR groups,
array bundles on disk (memory-mappable) and in bytes.

Files are written to a temporary name and renamed into place, so a KB that
is memory-mapped from a folder keeps working while the same folder is saved
again (``nlp.to_disk`` over the path it was loaded from): the old mapping
keeps the old inode alive instead of seeing a truncated file.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Sequence, Tuple

import marisa_trie
import numpy as np

from .csr import indptr


class StringTable:
    """Strings packed as UTF-8 bytes plus int64 offsets (about 8 bytes per
    string of overhead, against ~50 for a Python str in a list).

    data (np.ndarray): uint8 bytes.
    offsets (np.ndarray): int64, len(strings) + 1.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "StringTable":
        """Pack strings.

        strings (Iterable[str]): The strings, in row order.
        RETURNS (StringTable): The table.
        """
        encoded = [s.encode("utf8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return bytes(self.data[self.offsets[i] : self.offsets[i + 1]]).decode("utf8")

    def arrays(self, prefix: str) -> Dict[str, np.ndarray]:
        return {f"{prefix}_data": self.data, f"{prefix}_offsets": self.offsets}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str) -> "StringTable":
        return cls(arrays[f"{prefix}_data"], arrays[f"{prefix}_offsets"])


def group_csr(keys: np.ndarray, n_keys: int) -> Tuple[np.ndarray, np.ndarray]:
    """Order items by key, stably, for a CSR layout.

    keys (np.ndarray): Key of each item.
    n_keys (int): Number of keys.
    RETURNS (Tuple[np.ndarray, np.ndarray]): The item order and the int64
        indptr (items of key k are order[indptr[k]:indptr[k + 1]]).
    """
    return np.argsort(keys, kind="stable"), indptr(np.bincount(keys, minlength=n_keys))


def trie_key_ids(trie: marisa_trie.Trie, strings: Sequence[str]) -> np.ndarray:
    """The trie's key id of each string (all must be keys).

    trie (marisa_trie.Trie): The trie.
    strings (Sequence[str]): Keys.
    RETURNS (np.ndarray): int32 key ids.
    """
    return np.fromiter((trie[s] for s in strings), dtype=np.int32, count=len(strings))


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_bundle(
    folder: Path, arrays: Dict[str, np.ndarray], tries: Dict[str, marisa_trie.Trie], meta: Dict[str, Any]
) -> None:
    """Write arrays (.npy), tries (.marisa) and meta (meta.json) to a folder.

    folder (Path): Target folder (created).
    arrays (Dict[str, np.ndarray]): Named arrays.
    tries (Dict[str, marisa_trie.Trie]): Named tries.
    meta (Dict[str, Any]): JSON-serialisable settings.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        def write_array(p: Path, a: np.ndarray = array) -> None:
            with p.open("wb") as f:
                np.save(f, np.ascontiguousarray(a), allow_pickle=False)

        _atomic_write(folder / f"{name}.npy", write_array)
    for name, trie in tries.items():
        _atomic_write(folder / f"{name}.marisa", lambda p, t=trie: t.save(str(p)))
    _atomic_write(folder / "meta.json", lambda p: p.write_text(json.dumps(meta), encoding="utf8"))


def load_bundle(folder: Path, *, mmap: bool) -> Tuple[Dict[str, np.ndarray], Dict[str, marisa_trie.Trie], Dict[str, Any]]:
    """Read what `save_bundle` wrote.

    folder (Path): The folder.
    mmap (bool): Memory-map arrays and tries instead of reading them.
    RETURNS (Tuple[dict, dict, dict]): Arrays, tries, meta.
    """
    # Plain ndarray views of the maps: np.memmap's Python-level __getitem__
    # and __array_finalize__ cost more than a small look-up itself.
    arrays = {
        p.stem: np.asarray(np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False))
        for p in sorted(folder.glob("*.npy"))
    }
    tries = {}
    for p in sorted(folder.glob("*.marisa")):
        trie = marisa_trie.Trie()
        trie.mmap(str(p)) if mmap else trie.load(str(p))
        tries[p.stem] = trie
    meta = json.loads((folder / "meta.json").read_text(encoding="utf8"))
    return arrays, tries, meta


def encode_array(array: np.ndarray) -> Dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def decode_array(msg: Dict[str, Any]) -> np.ndarray:
    return np.frombuffer(msg["data"], dtype=np.dtype(msg["dtype"])).reshape(msg["shape"])


def encode_bundle(
    arrays: Dict[str, np.ndarray], tries: Dict[str, marisa_trie.Trie], meta: Dict[str, Any]
) -> Dict[str, Any]:
    return {
        "arrays": {k: encode_array(v) for k, v in arrays.items()},
        "tries": {k: t.tobytes() for k, t in tries.items()},
        "meta": meta,
    }


def decode_bundle(msg: Dict[str, Any]) -> Tuple[Dict[str, np.ndarray], Dict[str, marisa_trie.Trie], Dict[str, Any]]:
    arrays = {k: decode_array(v) for k, v in msg["arrays"].items()}
    tries = {k: marisa_trie.Trie().frombytes(v) for k, v in msg["tries"].items()}
    return arrays, tries, msg["meta"]

