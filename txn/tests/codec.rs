//! The command encoding: round trips, and a fuzz-style property that decoding arbitrary
//! or mutated bytes gives an error or a command, never a panic.

use elastickv_engine_api::Mutation;
use elastickv_txn::{Command, TxnError, COMMAND_FORMAT};
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..12)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (bytes(), bytes(), any::<u64>()).prop_map(|(key, value, expire_at)| Mutation::Put {
            key,
            value,
            expire_at
        }),
        bytes().prop_map(|key| Mutation::Delete { key }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let muts = || proptest::collection::vec(mutation(), 0..4);
    let keys = || proptest::collection::vec(bytes(), 0..4);
    prop_oneof![
        (any::<u64>(), muts()).prop_map(|(ts, writes)| Command::RawBatch { ts, writes }),
        (any::<u64>(), any::<u64>(), muts(), keys()).prop_map(
            |(start_ts, commit_ts, mutations, read_keys)| {
                Command::OnePhase {
                    start_ts,
                    commit_ts,
                    mutations,
                    read_keys,
                }
            }
        ),
        (
            bytes(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            muts(),
            keys()
        )
            .prop_map(
                |(primary, start_ts, lock_expiry, txn_size, mutations, read_keys)| {
                    Command::Prewrite {
                        primary,
                        start_ts,
                        lock_expiry,
                        txn_size,
                        mutations,
                        read_keys,
                    }
                }
            ),
        (bytes(), any::<u64>(), any::<u64>(), keys()).prop_map(
            |(primary, start_ts, commit_ts, keys)| Command::Commit {
                primary,
                start_ts,
                commit_ts,
                keys
            }
        ),
        (bytes(), any::<u64>(), keys()).prop_map(|(primary, start_ts, keys)| Command::Rollback {
            primary,
            start_ts,
            keys
        }),
        (bytes(), any::<u64>(), any::<u64>()).prop_map(|(primary, start_ts, caller_ts)| {
            Command::CheckTxnStatus {
                primary,
                start_ts,
                caller_ts,
            }
        }),
        any::<u64>().prop_map(|ceiling| Command::TsoCeiling { ceiling }),
        (any::<u64>(), bytes(), proptest::option::of(bytes()))
            .prop_map(|(ts, key, value)| Command::MetaPut { ts, key, value }),
        (any::<u64>(), bytes(), any::<u32>()).prop_map(|(safe_point, cursor, limit)| {
            Command::PurgeTxnRecords {
                safe_point,
                cursor,
                limit,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_command_round_trips(c in command()) {
        let encoded = c.encode();
        prop_assert_eq!(encoded[0], COMMAND_FORMAT);
        prop_assert_eq!(Command::decode(&encoded).unwrap(), c);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Command::decode(&raw);
    }

    #[test]
    fn decoding_mutated_commands_never_panics(c in command(), pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let mut encoded = c.encode();
        let i = pos % encoded.len();
        encoded[i] = byte;
        let _ = Command::decode(&encoded);
        encoded.truncate(cut % (encoded.len() + 1));
        let _ = Command::decode(&encoded);
    }

    #[test]
    fn truncated_commands_are_errors(c in command(), cut in any::<usize>()) {
        let encoded = c.encode();
        let cut = cut % encoded.len();
        prop_assert!(matches!(Command::decode(&encoded[..cut]), Err(TxnError::Decode(_))));
    }
}

#[test]
fn unknown_versions_tags_and_trailing_bytes_are_refused() {
    let good = Command::TsoCeiling { ceiling: 7 }.encode();
    let mut wrong_version = good.clone();
    wrong_version[0] = COMMAND_FORMAT + 1;
    assert!(matches!(
        Command::decode(&wrong_version),
        Err(TxnError::Decode(_))
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        Command::decode(&trailing),
        Err(TxnError::Decode(_))
    ));
    assert!(matches!(
        Command::decode(&[COMMAND_FORMAT, 200]),
        Err(TxnError::Decode(_))
    ));
    assert!(matches!(Command::decode(&[]), Err(TxnError::Decode(_))));
    // A huge declared count is refused without allocating it.
    let huge = [COMMAND_FORMAT, 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(Command::decode(&huge), Err(TxnError::Decode(_))));
}
