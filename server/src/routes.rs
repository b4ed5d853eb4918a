//! The route table: key ranges `[start, next start)` mapped to groups, versioned, kept
//! as a metadata entry of the default group and cached by every node.

use elastickv_engine_api::KeyRange;
use elastickv_txn::{GroupId, RouteTable};
use serde::{Deserialize, Serialize};

/// The metadata key of the route table in the default group.
pub const ROUTES_META_KEY: &[u8] = b"routes";

/// One version of the route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// Increases with every change.
    pub version: u64,
    /// Range starts, ascending, the first one empty, each with its group.
    pub starts: Vec<(Vec<u8>, GroupId)>,
}

/// A route as shown to clients: `[start, end)` (`end` empty: unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end (`None`: unbounded).
    pub end: Option<Vec<u8>>,
    /// The owning group.
    pub group: GroupId,
}

impl Routes {
    /// The first version: `groups` ranges split at `split_keys` (one fewer than groups),
    /// group `i` owning the `i`-th range.
    pub fn initial(groups: &[GroupId], split_keys: &[Vec<u8>]) -> Result<Routes, String> {
        if groups.is_empty() {
            return Err("at least one group is needed".into());
        }
        if split_keys.len() + 1 != groups.len() {
            return Err(format!(
                "{} groups need {} split keys, got {}",
                groups.len(),
                groups.len() - 1,
                split_keys.len()
            ));
        }
        let mut starts = vec![(Vec::new(), groups[0])];
        for (key, group) in split_keys.iter().zip(&groups[1..]) {
            if key.is_empty() || key <= &starts.last().expect("not empty").0 {
                return Err("split keys must be non-empty and strictly ascending".into());
            }
            starts.push((key.clone(), *group));
        }
        Ok(Routes { version: 1, starts })
    }

    /// Decodes the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Routes, String> {
        let routes: Routes =
            bincode::deserialize(bytes).map_err(|e| format!("bad route table: {e}"))?;
        if routes.starts.first().is_none_or(|(k, _)| !k.is_empty()) {
            return Err("bad route table: the first range must start at the empty key".into());
        }
        Ok(routes)
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).unwrap_or_default()
    }

    /// The table the transaction layer routes with.
    pub fn table(&self) -> RouteTable {
        RouteTable::new(self.starts.clone())
    }

    /// Every route, ascending.
    pub fn list(&self) -> Vec<Route> {
        self.starts
            .iter()
            .enumerate()
            .map(|(i, (start, group))| Route {
                start: start.clone(),
                end: self.starts.get(i + 1).map(|(k, _)| k.clone()),
                group: *group,
            })
            .collect()
    }

    /// The route holding `key`.
    pub fn route_of(&self, key: &[u8]) -> Route {
        let list = self.list();
        let i = list.partition_point(|r| r.start.as_slice() <= key);
        list[i.saturating_sub(1)].clone()
    }

    /// The table with the range holding `split_key` split there (both halves stay in
    /// the same group), as the next version. Splitting at an existing boundary or at
    /// the empty key is refused.
    pub fn split(&self, split_key: &[u8]) -> Result<Routes, String> {
        if split_key.is_empty() {
            return Err("the split key must not be empty".into());
        }
        if self.starts.iter().any(|(k, _)| k == split_key) {
            return Err("a range already starts at this key".into());
        }
        let route = self.route_of(split_key);
        let mut starts = self.starts.clone();
        let at = starts.partition_point(|(k, _)| k.as_slice() < split_key);
        starts.insert(at, (split_key.to_vec(), route.group));
        Ok(Routes {
            version: self.version + 1,
            starts,
        })
    }

    /// Every group named by the table, ascending.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self.starts.iter().map(|(_, g)| *g).collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// `range` cut into the parts each group owns, ascending.
    pub fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)> {
        self.table().route_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_table_splits_in_order_and_checks_its_input() {
        let routes = Routes::initial(&[0, 1, 2], &[b"h".to_vec(), b"q".to_vec()]).unwrap();
        assert_eq!(routes.route_of(b"a").group, 0);
        assert_eq!(routes.route_of(b"h").group, 1);
        assert_eq!(routes.route_of(b"pzzz").group, 1);
        assert_eq!(routes.route_of(b"q").group, 2);
        assert_eq!(routes.route_of(b"\xff").group, 2);
        assert!(Routes::initial(&[0, 1], &[]).is_err());
        assert!(Routes::initial(&[0, 1, 2], &[b"q".to_vec(), b"h".to_vec()]).is_err());
        assert!(Routes::initial(&[0, 1], &[Vec::new()]).is_err());
        assert_eq!(Routes::decode(&routes.encode()).unwrap(), routes);
        assert!(Routes::decode(b"garbage").is_err());
    }

    #[test]
    fn split_keeps_the_group_and_bumps_the_version() {
        let routes = Routes::initial(&[0, 1], &[b"m".to_vec()]).unwrap();
        let split = routes.split(b"t").unwrap();
        assert_eq!(split.version, 2);
        let list = split.list();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].start, b"t".to_vec());
        assert_eq!(list[2].group, 1);
        assert_eq!(list[1].end, Some(b"t".to_vec()));
        assert!(split.split(b"t").is_err());
        assert!(split.split(b"").is_err());
        let parts = split.route_range(&KeyRange::new(b"a".to_vec(), b"z".to_vec()));
        assert_eq!(
            parts.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
            vec![0, 1, 1]
        );
    }
}
