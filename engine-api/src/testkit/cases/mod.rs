//! The cases of the kit, one module per topic. Each case is a public function taking
//! the harness; [`conformance_tests!`](crate::conformance_tests) generates one
//! `#[test]` per case.

mod bad_input;
mod compaction;
mod concurrency;
mod conflicts;
mod differential;
mod raw;
mod reads;
mod reopen;
mod scans;
mod snapshots;
mod ttl;
mod volume;
mod writes;

pub use bad_input::*;
pub use compaction::*;
pub use concurrency::*;
pub use conflicts::*;
pub use differential::*;
pub use raw::*;
pub use reads::*;
pub use reopen::*;
pub use scans::*;
pub use snapshots::*;
pub use ttl::*;
pub use volume::*;
pub use writes::*;

/// Keys that are prefixes of each other, in ascending byte order. The seed system's
/// key encoding mixed up exactly such keys.
pub const PREFIX_KEYS: [&[u8]; 5] = [b"k", b"k\0", b"k1", b"k10", b"k\xff"];

/// Lists every case for [`conformance_tests!`](crate::conformance_tests). A case added
/// to a module must be added here too.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_every_case {
    ($harness:expr) => {
        $crate::__conformance_test_fns!($harness;
            values_of_several_mib_survive_reopen_and_a_snapshot_round_trip,
            thousands_of_versions_of_one_key_read_scan_and_compact_correctly,
            a_hundred_thousand_keys_written_in_batches_scan_and_read_back,
            reopening_continues_with_data_counters_watermark_and_raw_keyspace,
            a_snapshot_streams_a_consistent_image_while_writers_continue,
            a_corrupt_restore_leaves_the_previous_content,
            // reads
            get_returns_newest_version_at_or_below_read_ts,
            versions_written_out_of_order_are_read_by_timestamp,
            tombstone_hides_key_until_a_newer_put,
            same_ts_write_replaces_the_version,
            exists_at_follows_the_visibility_rule,
            prefix_related_keys_are_independent_for_point_reads,
            latest_commit_ts_counts_tombstones_and_expired_versions,
            reads_below_the_watermark_fail_with_read_ts_compacted,
            binary_keys_and_values_round_trip,
            // scans
            scan_returns_visible_pairs_of_half_open_range_ascending,
            reverse_scan_returns_largest_keys_first,
            scan_with_limit_zero_returns_nothing,
            empty_and_inverted_ranges_return_nothing,
            unbounded_end_reaches_the_last_key,
            hidden_keys_do_not_count_toward_the_limit,
            scan_returns_one_pair_per_key_at_its_visible_version,
            scans_order_prefix_related_keys_bytewise,
            scan_stops_at_the_limit_across_many_keys,
            // ttl
            ttl_value_is_hidden_exactly_at_expire_at,
            expired_newest_version_does_not_fall_back_to_older_values,
            ttl_set_in_a_batch_is_judged_per_version,
            expire_at_rewrites_the_visible_value_with_a_new_ttl,
            expire_at_zero_clears_the_ttl,
            expire_at_uses_the_value_visible_at_commit_ts,
            expire_at_without_a_visible_value_writes_nothing,
            expire_at_rejects_bad_keys_and_reserved_timestamps,
            // writes
            last_commit_ts_is_the_highest_commit_ts_written,
            apply_mutations_writes_every_mutation_at_commit_ts,
            duplicate_keys_in_one_batch_last_wins,
            raw_ops_commit_in_the_same_batch_as_mutations,
            buffered_writes_are_visible_immediately,
            empty_batch_changes_nothing,
            bad_mutation_late_in_batch_rejects_the_whole_batch,
            write_group_matches_writing_each_batch_in_turn,
            write_group_of_none_or_one_batch,
            write_group_survives_reopen,
            // conflicts
            version_newer_than_start_ts_conflicts_and_equal_does_not,
            tombstones_and_expired_versions_conflict,
            conflict_names_the_first_conflicting_key_in_caller_order,
            conflict_writes_nothing_at_all,
            read_set_keys_are_checked_but_not_written,
            writes_without_a_conflict_check_never_conflict,
            conflict_checks_distinguish_prefix_related_keys,
            // compaction
            compaction_keeps_the_anchor_and_newer_versions,
            single_version_is_kept_as_the_anchor,
            removing_hidden_anchors_leaves_reads_at_or_above_min_ts_unchanged,
            compaction_scope_only_touches_listed_ranges,
            compaction_scope_all_except_leaves_excluded_ranges,
            watermark_is_monotonic_and_never_lowered,
            repeated_compaction_is_idempotent,
            compaction_of_many_keys_keeps_reads_at_the_watermark,
            // snapshots
            snapshot_round_trip_restores_versions_and_counters,
            empty_store_snapshot_restores_to_an_empty_store,
            large_values_round_trip,
            many_versions_round_trip,
            snapshot_is_a_point_in_time_image,
            streams_move_between_this_engine_and_another,
            corrupt_streams_leave_the_previous_content_intact,
            restore_with_applies_raw_ops_atomically,
            // raw
            raw_put_get_delete_round_trip,
            raw_ops_in_one_batch_apply_in_order,
            raw_scans_respect_range_limit_and_direction,
            raw_delete_range_removes_exactly_the_half_open_range,
            raw_keyspace_is_separate_from_mvcc_data,
            bad_raw_op_rejects_the_whole_raw_batch,
            // reopen
            reopen_keeps_versions_and_last_commit_ts,
            reopen_keeps_the_watermark_and_compacted_state,
            reopen_keeps_the_raw_keyspace,
            reopen_keeps_a_restored_image,
            // concurrency
            parallel_writers_on_distinct_keys_all_land,
            parallel_writers_on_one_key_keep_every_version,
            scans_during_writes_see_one_consistent_state,
            concurrent_apply_mutations_each_commit_or_conflict,
            snapshot_streams_while_writers_keep_going,
            compaction_runs_alongside_writers_and_readers,
            restores_racing_with_writers_keep_counters_consistent,
            compaction_racing_with_restore_keeps_the_restored_image_readable,
            // bad_input
            empty_keys_are_refused_everywhere,
            keys_over_the_limit_are_refused_and_at_the_limit_accepted,
            values_over_the_limit_are_refused,
            reserved_commit_timestamps_are_refused,
            batches_over_the_entry_limit_are_refused,
            restore_of_invalid_streams_keeps_the_data,
            scan_bounds_are_validated_not_trusted,
            // differential
            random_operation_sequences_match_the_reference_model,
        );
    };
}
