//! Bank transfers: money moves between accounts in transactions; every snapshot read of
//! all accounts must see the same total, and no negative balance.

use super::history::{Op, Outcome};

/// A bank operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankOp {
    /// Move `amount` from one account to another (refused if the balance is too low).
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        /// The balances the transfer read (for the post-mortem), when it got that far.
        seen: Option<(i64, i64)>,
    },
    /// Every account's balance, read in one transaction (`None` for a missing account);
    /// `None` until known.
    Read(Option<Vec<Option<i64>>>),
}

/// Checks every completed read against the expected total over `accounts` accounts.
pub fn check(history: &[Op<BankOp>], accounts: usize, total: i64) -> Result<usize, String> {
    let mut reads = 0;
    let mut bad = Vec::new();
    for op in history {
        let (Outcome::Ok, BankOp::Read(Some(balances))) = (op.outcome, &op.f) else {
            continue;
        };
        reads += 1;
        let described = || {
            format!(
                "read by process {} at {}..{} ns: {balances:?}",
                op.process, op.invoke, op.complete
            )
        };
        if balances.len() != accounts || balances.iter().any(Option::is_none) {
            bad.push(format!("accounts missing in the {}", described()));
            continue;
        }
        let values: Vec<i64> = balances.iter().flatten().copied().collect();
        if values.iter().any(|b| *b < 0) {
            bad.push(format!("a negative balance in the {}", described()));
        }
        let sum: i64 = values.iter().sum();
        if sum != total {
            bad.push(format!("total {sum}, not {total}, in the {}", described()));
        }
    }
    if bad.is_empty() {
        Ok(reads)
    } else {
        let n = bad.len();
        bad.truncate(10);
        Err(format!(
            "{n} of {reads} reads are wrong; the first:\n{}",
            bad.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(b: &[i64]) -> Op<BankOp> {
        Op::new(
            0,
            0,
            1,
            Outcome::Ok,
            BankOp::Read(Some(b.iter().map(|v| Some(*v)).collect())),
        )
    }

    #[test]
    fn constant_totals_pass() {
        let h = vec![
            read(&[10, 10, 10]),
            Op::new(
                1,
                2,
                3,
                Outcome::Ok,
                BankOp::Transfer {
                    from: 0,
                    to: 1,
                    amount: 5,
                    seen: Some((10, 10)),
                },
            ),
            read(&[5, 15, 10]),
            Op::new(2, 2, 3, Outcome::Info, BankOp::Read(None)),
        ];
        assert_eq!(check(&h, 3, 30), Ok(2));
    }

    #[test]
    fn a_changed_total_a_negative_balance_or_a_missing_account_fails() {
        assert!(check(&[read(&[5, 10, 10])], 3, 30)
            .unwrap_err()
            .contains("total 25"));
        assert!(check(&[read(&[-5, 25, 10])], 3, 30)
            .unwrap_err()
            .contains("negative"));
        let missing = Op::new(
            0,
            0,
            1,
            Outcome::Ok,
            BankOp::Read(Some(vec![Some(30), None])),
        );
        assert!(check(&[missing], 2, 30).unwrap_err().contains("missing"));
    }
}
