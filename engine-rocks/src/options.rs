//! Tuning knobs of the RocksDB engine and their translation to RocksDB options.

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, DBCompressionType, DBRecoveryMode, Options,
};

/// Block compression of the SST files.
///
/// Only LZ4 is compiled into this crate's RocksDB build (the other codecs would add
/// build time and C dependencies for little gain on this workload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression: the least CPU, the most disk.
    None,
    /// LZ4: fast compression and decompression, a good default for MVCC versions.
    #[default]
    Lz4,
}

impl Compression {
    fn to_rocks(self) -> DBCompressionType {
        match self {
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
        }
    }
}

/// Tuning knobs of the RocksDB engine. `RocksOptions::default()` suits most uses; see
/// `docs/engines/rocksdb.md` for how each knob trades memory, disk and speed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksOptions {
    /// Capacity of the LRU block cache shared by every column family, in bytes. Index
    /// and filter blocks are kept in it too, so it bounds the read-side memory.
    /// Default 64 MiB.
    pub block_cache_bytes: usize,
    /// Size of one memtable (per column family) before it is flushed to an SST file,
    /// in bytes. Larger memtables absorb more writes (fewer, larger flushes) at the
    /// cost of memory and of WAL replay time after a crash. Default 64 MiB.
    pub write_buffer_bytes: usize,
    /// Compression of SST blocks. Default [`Compression::Lz4`].
    pub compression: Compression,
    /// Bits per key of the Bloom filter built for every SST file; `0` disables the
    /// filters. Ten bits give about a 1% false-positive rate, which lets point lookups
    /// skip files that cannot hold the key. Default 10.
    pub bloom_bits_per_key: u32,
    /// Threads RocksDB may use for flushes and compactions. Default 2.
    pub background_jobs: i32,
    /// How many versions one MVCC compaction batch examines (one write batch each).
    /// Default 4096.
    pub compaction_batch: usize,
    /// During a restore, the bytes buffered before a batch of restored versions is
    /// written to the new generation. Bounds the memory a restore uses. Default 8 MiB.
    pub restore_batch_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 64 * 1024 * 1024,
            write_buffer_bytes: 64 * 1024 * 1024,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
            background_jobs: 2,
            compaction_batch: 4096,
            restore_batch_bytes: 8 * 1024 * 1024,
        }
    }
}

impl RocksOptions {
    /// The database-wide options: creation, background work and WAL recovery.
    pub(crate) fn db_options(&self) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(self.background_jobs.max(1));
        // After a crash, replay the WAL up to the first incomplete or corrupt record and
        // stop there: the store comes back as a prefix of the writes, never with a later
        // write and without an earlier one (ENGINE.md section 9; RocksDB wiki, "WAL
        // Recovery Modes"). This is RocksDB's default; it is set here so that the
        // guarantee does not depend on a default that could change.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        // Keep RocksDB's informational log small: it is for diagnosis only.
        opts.set_keep_log_file_num(4);
        opts.set_max_log_file_size(16 * 1024 * 1024);
        opts
    }

    /// The options of every column family, sharing `cache`.
    pub(crate) fn column_family_options(&self, cache: &Cache) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        // Partitioned index and filters (RocksDB wiki, "Partitioned Index/Filters"):
        // a large SST file's index and filter are split into blocks of about 4 KiB
        // behind a small top-level index, so a lookup loads and caches only the
        // partitions it needs. With one monolithic index, a compacted file of a few
        // hundred MB has an index block larger than a block-cache shard; it is then
        // never cached, and every iterator (each MVCC read and conflict check opens
        // one) read and decompressed the whole block again: about 0.3 ms per call in
        // the engines benchmark.
        table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_metadata_block_size(4096);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if self.bloom_bits_per_key > 0 {
            table.set_bloom_filter(f64::from(self.bloom_bits_per_key), false);
        }
        let mut opts = Options::default();
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_size(self.write_buffer_bytes.max(64 * 1024));
        opts.set_compression_type(self.compression.to_rocks());
        opts
    }

    /// The block cache shared by every column family.
    pub(crate) fn block_cache(&self) -> Cache {
        Cache::new_lru_cache(self.block_cache_bytes)
    }
}
