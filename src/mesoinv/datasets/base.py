"""What every dataset kind shares: sample ids in shards, per-sample randomness, a config hash."""

import numpy as np

from ..config import sample_config_hash

__all__ = ["ShardedDataset", "sample_rng"]


def sample_rng(seed: int, sample_id: int) -> np.random.Generator:
    """The random generator of one sample: PCG64 on SeedSequence(seed, spawn_key=(id,))."""
    if sample_id < 0:
        raise ValueError(f"sample ids are non-negative, got {sample_id}")
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(int(seed), spawn_key=(int(sample_id),))))


class ShardedDataset:
    """Mixin for dataset specs with ``name``, ``config``, ``seed``, ``n_samples``, ``shard_size``.

    ``n_samples`` and ``shard_size`` are None for a spec built from a dataset *definition*
    (what simulation jobs see), since they do not define any sample.
    """

    @property
    def config_hash(self) -> str:
        """sha256 of the sample-defining configuration (see :func:`mesoinv.config.sample_config_hash`)."""
        return sample_config_hash(self.config)

    @property
    def n_shards(self) -> int:
        """Number of shards, ⌈n_samples / shard_size⌉."""
        if self.n_samples is None or self.shard_size is None:
            raise ValueError(f"dataset '{self.name}' was defined without n_samples/shard_size")
        return -(-self.n_samples // self.shard_size)

    def shard_ids(self, shard: int) -> range:
        """Sample ids of shard ``shard`` (consecutive, ``shard_size`` of them, the last shorter)."""
        n_shards = self.n_shards
        if not 0 <= shard < n_shards:
            raise ValueError(f"dataset '{self.name}' has shards 0…{n_shards - 1}, not {shard}")
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.n_samples))

    def split_unit(self, sample_id: int) -> int:
        """The unit that is assigned to a split: the sample itself, unless a kind groups samples
        (P2: the five potential realisations of one antidot configuration stay together)."""
        return int(sample_id)
