//! The last guardrail, after the total is settled: split it across capacity
//! pools. A decision's per-pool targets are scaled to the guarded total (the
//! total's rules may have changed it), then each pool is held within its
//! configured bounds, the difference going to the pools with room, in the
//! decision's order. When no split fits every pool's bounds the total wins:
//! the split is dropped, the target keeps its own mix, and the record says why.

use crate::model::PoolTarget;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One pool's bounds (`[scaler.pools.NAME]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolBounds {
    pub min: u32,
    pub max: Option<u32>,
}

/// Every configured pool's bounds, by name.
pub type PoolLimits = BTreeMap<String, PoolBounds>;

/// The split of `total` over `wanted`'s pools, and what the bounds changed
/// (`None`: nothing), or why no split fits.
pub fn split(
    total: u32,
    wanted: &[PoolTarget],
    limits: &PoolLimits,
) -> Result<(Vec<PoolTarget>, Option<String>), String> {
    let bounds = |name: &str| limits.get(name).copied().unwrap_or_default();
    let asked: u64 = wanted.iter().map(|t| u64::from(t.replicas)).sum();
    // Scale to the total by largest remainder; all of it to the first pool
    // when the decision asked for none anywhere.
    let mut counts: Vec<u64> = if asked == 0 {
        let mut c = vec![0; wanted.len()];
        if let Some(first) = c.first_mut() {
            *first = u64::from(total);
        }
        c
    } else {
        let exact: Vec<f64> = wanted
            .iter()
            .map(|t| f64::from(t.replicas) * f64::from(total) / asked as f64)
            .collect();
        let mut c: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
        let mut order: Vec<usize> = (0..c.len()).collect();
        order.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor()))
        });
        let short = u64::from(total).saturating_sub(c.iter().sum());
        for &i in order.iter().cycle().take(short as usize) {
            c[i] += 1;
        }
        c
    };
    let scaled = counts.clone();
    for (c, t) in counts.iter_mut().zip(wanted) {
        let b = bounds(&t.pool);
        *c = (*c).max(u64::from(b.min));
        if let Some(max) = b.max {
            *c = (*c).min(u64::from(max));
        }
    }
    let mut sum: u64 = counts.iter().sum();
    let goal = u64::from(total);
    for i in 0..counts.len() {
        if sum >= goal {
            break;
        }
        let cap = bounds(&wanted[i].pool).max.map_or(u64::MAX, u64::from);
        let add = cap.saturating_sub(counts[i]).min(goal - sum);
        counts[i] += add;
        sum += add;
    }
    for i in (0..counts.len()).rev() {
        if sum <= goal {
            break;
        }
        let spare = counts[i] - u64::from(bounds(&wanted[i].pool).min);
        let take = spare.min(sum - goal);
        counts[i] -= take;
        sum -= take;
    }
    let describe = |c: &[u64]| {
        wanted
            .iter()
            .zip(c)
            .map(|(t, n)| format!("{} {n}", t.pool))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if sum != goal {
        let b: Vec<String> = wanted
            .iter()
            .map(|t| {
                let b = bounds(&t.pool);
                format!(
                    "{} [{}, {}]",
                    t.pool,
                    b.min,
                    b.max.map_or("-".into(), |m| m.to_string())
                )
            })
            .collect();
        return Err(format!(
            "no split of {total} replicas fits the pools' bounds ({}): the split is dropped and the target keeps its mix",
            b.join(", ")
        ));
    }
    let changed = (counts != scaled)
        .then(|| format!("asked {}; kept {}", describe(&scaled), describe(&counts)));
    let split = wanted
        .iter()
        .zip(counts)
        .map(|(t, n)| PoolTarget {
            pool: t.pool.clone(),
            replicas: n as u32,
        })
        .collect();
    Ok((split, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pool: &str, replicas: u32) -> PoolTarget {
        PoolTarget {
            pool: pool.into(),
            replicas,
        }
    }

    fn limits(list: &[(&str, u32, Option<u32>)]) -> PoolLimits {
        list.iter()
            .map(|(n, min, max)| {
                (
                    (*n).to_owned(),
                    PoolBounds {
                        min: *min,
                        max: *max,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn an_unbounded_split_that_sums_is_kept() {
        let (s, why) = split(5, &[t("od", 2), t("spot", 3)], &PoolLimits::new()).unwrap();
        assert_eq!(s, [t("od", 2), t("spot", 3)]);
        assert_eq!(why, None);
    }

    #[test]
    fn a_split_is_scaled_to_the_guarded_total_by_largest_remainder() {
        // The rate limit cut 10 to 4: 3:7 becomes 1:3 (1.2 and 2.8).
        let (s, _) = split(4, &[t("od", 3), t("spot", 7)], &PoolLimits::new()).unwrap();
        assert_eq!(s, [t("od", 1), t("spot", 3)]);
        let (s, _) = split(3, &[t("od", 0), t("spot", 0)], &PoolLimits::new()).unwrap();
        assert_eq!(s, [t("od", 3), t("spot", 0)]);
    }

    #[test]
    fn each_pool_stays_in_its_bounds_and_the_rest_goes_where_there_is_room() {
        let l = limits(&[("spot", 0, Some(4)), ("od", 2, None)]);
        let (s, why) = split(8, &[t("od", 0), t("spot", 8)], &l).unwrap();
        assert_eq!(s, [t("od", 4), t("spot", 4)]);
        assert_eq!(
            why.as_deref(),
            Some("asked od 0, spot 8; kept od 4, spot 4")
        );
        // The on-demand floor of 2 comes out of spot.
        let (s, _) = split(3, &[t("od", 0), t("spot", 3)], &l).unwrap();
        assert_eq!(s, [t("od", 2), t("spot", 1)]);
    }

    #[test]
    fn bounds_no_split_can_fit_drop_the_split() {
        let l = limits(&[("spot", 0, Some(2)), ("od", 0, Some(2))]);
        let e = split(6, &[t("od", 3), t("spot", 3)], &l).unwrap_err();
        assert!(e.contains("no split of 6"), "{e}");
    }
}
