//! Keeping an instance's own search index current with the changes made on the other
//! instances (or straight in MySQL): each pass reads the database's clock, then the
//! coupons whose `updated_at` is at or after the previous pass's clock minus a
//! look-back, and applies the ones it has not applied.
//!
//! The look-back exists because a row's `updated_at` is taken when its statement runs,
//! not when it commits: a row stamped just before a pass may become visible only after
//! it. Rows inside the look-back are read again by the passes of the next two seconds
//! and skipped when their stamp is one already applied; after that a quiet catalog
//! costs a pass one index read that finds nothing.

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeDelta};

use super::*;

/// How late a change may become visible after its stamp and still be found. Admin
/// changes are single statements that commit within milliseconds.
const LOOK_BACK: TimeDelta = TimeDelta::seconds(2);
/// Rows read per query.
const CHUNK: i64 = 1000;

/// Where an instance's index stands in the coupons' change history.
#[derive(Debug, Default)]
pub struct ChangeCursor {
    /// The database's clock when the last complete pass began.
    passed: Option<NaiveDateTime>,
    /// The stamps applied inside the look-back, by coupon id.
    recent: HashMap<CouponId, NaiveDateTime>,
}

impl ChangeCursor {
    /// Where the next pass starts reading.
    fn since(&self) -> NaiveDateTime {
        self.passed
            .map_or(DateTime::UNIX_EPOCH.naive_utc(), |at| at - LOOK_BACK)
    }

    /// Whether this version of a row still has to be applied.
    fn is_new(&self, id: CouponId, stamp: NaiveDateTime) -> bool {
        self.recent.get(&id) != Some(&stamp)
    }

    fn applied(&mut self, id: CouponId, stamp: NaiveDateTime) {
        self.recent.insert(id, stamp);
    }

    /// Closes a complete pass that began at `clock`: the next one reads from there
    /// (minus the look-back), and the stamps it will not read again are forgotten.
    fn passed(&mut self, clock: NaiveDateTime) {
        self.passed = self.passed.max(Some(clock));
        let since = self.since();
        self.recent.retain(|_, stamp| *stamp >= since);
    }
}

impl Catalog {
    /// Applies to the search index every coupon change it has not applied yet; the
    /// first pass fills it. Returns how many coupons it applied.
    pub async fn follow_search_changes(
        &self,
        cursor: &mut ChangeCursor,
    ) -> Result<usize, CatalogError> {
        let clock = self
            .mysql
            .with_conn(async |conn| coupons::clock(conn).await)
            .await?;
        let since = cursor.since();
        let mut after = None;
        let mut applied = 0;
        loop {
            let rows = self
                .mysql
                .with_conn(async |conn| coupons::changed_since(conn, since, after, CHUNK).await)
                .await?;
            let Some((last, last_stamp)) = rows.last() else {
                break;
            };
            after = Some((*last_stamp, last.id.get()));
            let full = rows.len() == CHUNK as usize;
            let (changed, stamps): (Vec<Coupon>, Vec<_>) = rows
                .into_iter()
                .filter(|(coupon, stamp)| cursor.is_new(coupon.id, *stamp))
                .map(|(coupon, stamp)| {
                    let id = coupon.id;
                    (coupon, (id, stamp))
                })
                .unzip();
            if !changed.is_empty() {
                self.search.rebuild(&changed).await.map_err(unavailable)?;
                applied += changed.len();
            }
            for (id, stamp) in stamps {
                cursor.applied(id, stamp);
            }
            if !full {
                break;
            }
        }
        cursor.passed(clock);
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0)
            .unwrap()
            .naive_utc()
    }

    fn id(n: i64) -> CouponId {
        CouponId::new(n).unwrap()
    }

    #[test]
    fn the_first_pass_reads_everything() {
        assert_eq!(
            ChangeCursor::default().since(),
            DateTime::UNIX_EPOCH.naive_utc()
        );
    }

    #[test]
    fn later_passes_read_again_inside_the_look_back_and_skip_what_was_applied() {
        let mut cursor = ChangeCursor::default();
        cursor.applied(id(1), at(0));
        cursor.applied(id(2), at(10));
        cursor.passed(at(10));
        assert_eq!(cursor.since(), at(8));
        assert!(!cursor.is_new(id(2), at(10)), "read again, already applied");
        assert!(cursor.is_new(id(2), at(11)), "changed again");
        assert!(
            cursor.is_new(id(3), at(9)),
            "committed late, stamped earlier"
        );
        assert!(!cursor.recent.contains_key(&id(1)), "outside the look-back");
    }

    #[test]
    fn a_quiet_catalog_is_not_read_again_once_the_look_back_has_passed() {
        let mut cursor = ChangeCursor::default();
        cursor.applied(id(1), at(10));
        cursor.passed(at(10));
        cursor.passed(at(13));
        assert_eq!(cursor.since(), at(11), "the change at 10 is behind");
        assert!(cursor.recent.is_empty());
    }

    #[test]
    fn a_clock_that_steps_back_never_moves_the_cursor_back() {
        let mut cursor = ChangeCursor::default();
        cursor.passed(at(10));
        cursor.passed(at(9));
        assert_eq!(cursor.since(), at(8));
    }
}
