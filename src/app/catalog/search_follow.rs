//! Keeping an instance's own search index current: at start, after each admin change
//! made here, and every `catalog.search.follow_ms` for the changes made elsewhere (or
//! straight in MySQL). Each pass reads the database's clock, then the (id, stamp) pairs
//! of the coupons whose `updated_at` is at or after the previous pass's clock minus a
//! look-back, and loads and applies the rows whose stamp it has not applied. Passes run
//! one at a time, so a row read later never loses to an older copy of it.
//!
//! The look-back exists because a row's `updated_at` is taken when its statement runs,
//! not when it commits: a statement that waited for a lock, or a bulk load, becomes
//! visible after passes that began later than its stamp. A minute is longer than
//! InnoDB's default lock wait (50 s); a transaction held open longer than that is
//! found at the next start. Rows inside the look-back are listed again by later passes
//! (from the index alone) and skipped when their stamp is one already applied.

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeDelta};

use super::*;

/// How late a change may become visible after its stamp and still be found.
const LOOK_BACK: TimeDelta = TimeDelta::seconds(60);
/// Rows listed per query.
const CHUNK: i64 = 1000;
/// How much longer than `follow_ms` ago the last complete pass may have begun for the
/// engine's copy of the rows to answer searches (a pass takes time on a busy primary).
const CURRENT_SLACK: Duration = Duration::from_secs(1);

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
    /// Applies to this instance's search index every coupon change it has not applied
    /// yet; the first pass fills it. Returns how many coupons it applied.
    pub async fn follow_search_changes(&self) -> Result<usize, CatalogError> {
        let mut cursor = self.search_cursor.lock().await;
        let began = Instant::now();
        let clock = self
            .mysql
            .with_conn(async |conn| coupons::clock(conn).await)
            .await?;
        let since = cursor.since();
        let mut after = None;
        let mut applied = 0;
        loop {
            let stamps = self
                .mysql
                .with_conn(async |conn| coupons::stamps_since(conn, since, after, CHUNK).await)
                .await?;
            let Some(&(last_id, last_stamp)) = stamps.last() else {
                break;
            };
            after = Some((last_stamp, last_id));
            let new: Vec<i64> = stamps
                .iter()
                .filter(|(id, stamp)| {
                    CouponId::new(*id).is_some_and(|id| cursor.is_new(id, *stamp))
                })
                .map(|(id, _)| *id)
                .collect();
            if !new.is_empty() {
                let rows = self
                    .mysql
                    .with_conn(async |conn| coupons::find_with_stamps(conn, &new).await)
                    .await?;
                let (coupons, row_stamps): (Vec<Coupon>, Vec<_>) = rows.into_iter().unzip();
                self.search.rebuild(&coupons).await.map_err(unavailable)?;
                applied += coupons.len();
                // The stamp read with the row: a change made since it was listed is
                // then listed again with a newer one.
                for (coupon, stamp) in coupons.iter().zip(row_stamps) {
                    cursor.applied(coupon.id, stamp);
                }
            }
            if stamps.len() < CHUNK as usize {
                break;
            }
        }
        cursor.passed(clock);
        *lock(&self.search_passed_at) = Some(began);
        Ok(applied)
    }

    /// Whether this instance can answer searches: an index of its own must have been
    /// filled once.
    pub(super) fn search_is_filled(&self) -> bool {
        !self.search.per_instance() || lock(&self.search_passed_at).is_some()
    }

    /// Whether the engine's own copy of the rows may answer for MySQL: only while the
    /// passes keep it within the stated delay. An instance cut off from MySQL, or whose
    /// passes fail, reads the rows from MySQL again (and answers 503 if it cannot).
    pub(super) fn search_copy_is_current(&self) -> bool {
        let bound = Duration::from_millis(self.settings.search.follow_ms) + CURRENT_SLACK;
        lock(&self.search_passed_at).is_some_and(|began| began.elapsed() <= bound)
    }
}

fn lock(
    passed_at: &std::sync::Mutex<Option<Instant>>,
) -> std::sync::MutexGuard<'_, Option<Instant>> {
    // A plain value: a panic while it was held cannot leave it half-written.
    passed_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        cursor.applied(id(2), at(100));
        cursor.passed(at(100));
        assert_eq!(cursor.since(), at(40));
        assert!(
            !cursor.is_new(id(2), at(100)),
            "read again, already applied"
        );
        assert!(cursor.is_new(id(2), at(101)), "changed again");
        assert!(
            cursor.is_new(id(3), at(90)),
            "committed late, stamped earlier"
        );
        assert!(!cursor.recent.contains_key(&id(1)), "outside the look-back");
    }

    #[test]
    fn a_quiet_catalog_is_not_read_again_once_the_look_back_has_passed() {
        let mut cursor = ChangeCursor::default();
        cursor.applied(id(1), at(10));
        cursor.passed(at(10));
        cursor.passed(at(75));
        assert_eq!(cursor.since(), at(15), "the change at 10 is behind");
        assert!(cursor.recent.is_empty());
    }

    #[test]
    fn a_clock_that_steps_back_never_moves_the_cursor_back() {
        let mut cursor = ChangeCursor::default();
        cursor.passed(at(100));
        cursor.passed(at(90));
        assert_eq!(cursor.since(), at(40));
    }
}
