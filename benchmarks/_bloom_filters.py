"""Bloom filters over random 16-byte keys, for benchmarks/index_growth.py's log-structured index designs."""

from __future__ import annotations

import math

import numpy as np

BLOOM_BITS_PER_KEY = 16


class Bloom:
    """A blocked Bloom filter over random keys: each key sets about 8 bits in one 64-bit word, chosen by its first
    8 bytes; the bits come from its last 8 (the key is a hash: no hashing needed). One word read tests a key."""

    def __init__(self, nkeys: int) -> None:
        words = 1 << max(10, math.ceil(math.log2(max(1, nkeys) * BLOOM_BITS_PER_KEY / 64)))
        self.wmask = words - 1
        self.words = np.zeros(words, dtype="<u8")
        self.view = memoryview(self.words.data).cast("B").cast("Q")

    @staticmethod
    def key_bits(key: bytes) -> tuple[int, int]:
        """The key's word number (before masking) and its bits."""
        h2 = int.from_bytes(key[8:], "little")
        bits = h2 & ((h2 << 21 | h2 >> 43) & 0xFFFFFFFFFFFFFFFF) & ((h2 << 42 | h2 >> 22) & 0xFFFFFFFFFFFFFFFF)
        return int.from_bytes(key[:8], "little"), bits or 1

    def _words_bits(self, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
        halves = np.frombuffer(raw, dtype="<u8").reshape(-1, 2)
        h2 = halves[:, 1]
        bits = h2 & ((h2 << np.uint64(21)) | (h2 >> np.uint64(43))) & ((h2 << np.uint64(42)) | (h2 >> np.uint64(22)))
        bits[bits == 0] = 1
        return (halves[:, 0] & np.uint64(self.wmask)).astype(np.int64), bits

    def add(self, raw: bytes) -> None:
        """Add keys given as one string of 16-byte keys."""
        idx, bits = self._words_bits(raw)
        np.bitwise_or.at(self.words, idx, bits)

    def maybe_many(self, raw: bytes) -> np.ndarray:
        idx, bits = self._words_bits(raw)
        return (self.words[idx] & bits) == bits

    def maybe_bits(self, word: int, bits: int) -> bool:
        return self.view[word & self.wmask] & bits == bits


class Segments:
    """The filter over all runs: segments, the newest taking new runs' keys until it holds what it was sized for,
    then a new one twice the total; never rebuilt (a merge keeps the keys), a test reads one word a segment."""

    def __init__(self, nkeys: int) -> None:
        self.parts = [Bloom(max(nkeys, 1_000_000))]
        self.room = [max(nkeys, 1_000_000)]

    def add(self, raw: bytes) -> None:
        n = len(raw) // 16
        if n > self.room[-1]:
            size = max(2 * sum(len(p.words) for p in self.parts) * 64 // BLOOM_BITS_PER_KEY, n)
            self.parts.append(Bloom(size))
            self.room.append(size)
        self.parts[-1].add(raw)
        self.room[-1] -= n

    def maybe_bits(self, word: int, bits: int) -> bool:
        return any(p.maybe_bits(word, bits) for p in self.parts)

    def maybe_many(self, raw: bytes) -> np.ndarray:
        hit = self.parts[0].maybe_many(raw)
        for p in self.parts[1:]:
            hit |= p.maybe_many(raw)
        return hit
