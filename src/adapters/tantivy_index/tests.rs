use chrono::TimeDelta;

use super::*;
use crate::domain::coupon::SaleWindow;
use crate::domain::search::RawSearch;

fn coupon(id: i64, name: &str, description: &str, price: i64, starts_in: i64) -> Coupon {
    let now = Utc::now();
    Coupon {
        id: CouponId::new(id).unwrap(),
        name: name.to_owned(),
        description: description.to_owned(),
        price_cents: price,
        image_key: None,
        total_quantity: 10,
        per_user_limit: 1,
        sale: SaleWindow {
            starts_at: now + TimeDelta::seconds(starts_in),
            ends_at: now + TimeDelta::seconds(starts_in + 3600 + id),
        },
        is_deleted: false,
        waiting_room_per_sec: None,
    }
}

fn index(coupons: &[Coupon]) -> TantivySearch {
    let index = TantivySearch::new(0).unwrap();
    index.inner.upsert(coupons).unwrap();
    index
}

fn ids(index: &TantivySearch, raw: RawSearch<'_>) -> Vec<i64> {
    let query = SearchQuery::parse(raw, 20, 100).unwrap();
    index
        .inner
        .search(&query, Utc::now())
        .unwrap()
        .into_iter()
        .map(CouponId::get)
        .collect()
}

fn q(q: &str) -> RawSearch<'_> {
    RawSearch {
        q: Some(q),
        ..RawSearch::default()
    }
}

fn set() -> Vec<Coupon> {
    vec![
        coupon(1, "Coffee beans", "Fresh roast from Colombia", 900, -60),
        coupon(2, "Tea sampler", "Pairs well with coffee cake", 300, -60),
        coupon(3, "Espresso cups", "For coffee lovers", 1500, 600),
        coupon(4, "Coffeemaker deluxe", "Brews twelve cups", 5000, -60),
        coupon(5, "Chocolate bar", "Dark, seventy percent", 200, -60),
    ]
}

#[test]
fn name_matches_rank_above_description_matches_and_prefixes_match() {
    let index = index(&set());
    assert_eq!(ids(&index, q("coffee")), [1, 4, 3, 2]);
    assert_eq!(ids(&index, q("cof")), [4, 1, 3, 2], "prefix; ties by id");
    assert_eq!(
        ids(&index, q("coffee colombia")),
        [1],
        "every term required"
    );
    assert_eq!(ids(&index, q("zanzibar")), Vec::<i64>::new());
}

#[test]
fn typos_match_whole_words_below_exact_prefixes() {
    let index = index(&set());
    assert_eq!(ids(&index, q("cofee")), [1, 3, 2]);
    assert_eq!(ids(&index, q("chocolat")), [5]);
    assert_eq!(ids(&index, q("cup")), [3, 4]);
    // Three letters allow one edit of a whole word ("cups" is two away), never of a
    // prefix.
    assert_eq!(ids(&index, q("cap")), Vec::<i64>::new());
}

#[test]
fn filters_and_sorts_read_the_fast_fields() {
    let index = index(&set());
    let raw = |status, sort| RawSearch {
        status,
        sort,
        ..RawSearch::default()
    };
    assert_eq!(ids(&index, raw(Some("upcoming"), None)), [3]);
    assert_eq!(ids(&index, raw(Some("live"), Some("price"))), [5, 2, 1, 4]);
    assert_eq!(ids(&index, raw(None, Some("price_desc"))), [4, 3, 1, 2, 5]);
    assert_eq!(ids(&index, raw(None, Some("newest"))), [5, 4, 3, 2, 1]);
    assert_eq!(ids(&index, raw(None, Some("ending_soon"))), [1, 2, 4, 5, 3]);
    let priced = RawSearch {
        min_price: Some("300"),
        max_price: Some("1500"),
        ..q("coffee")
    };
    assert_eq!(ids(&index, priced), [1, 3, 2]);
}

#[test]
fn pages_take_one_more_to_tell_whether_another_follows() {
    let index = index(&set());
    let page = |page| RawSearch {
        sort: Some("price"),
        size: Some("2"),
        page: Some(page),
        ..RawSearch::default()
    };
    assert_eq!(ids(&index, page("1")), [5, 2, 1]);
    assert_eq!(ids(&index, page("3")), [4]);
}

#[test]
fn a_change_replaces_the_coupon_and_a_deleted_one_is_removed() {
    let mut coupons = set();
    let index = index(&coupons);
    coupons[0].name = "Zanzibar beans".to_owned();
    coupons[4].is_deleted = true;
    index.inner.upsert(&coupons[..]).unwrap();
    assert_eq!(ids(&index, q("zanzibar")), [1]);
    assert_eq!(ids(&index, q("coffee")), [4, 3, 2]);
    assert_eq!(ids(&index, q("chocolate")), Vec::<i64>::new());
    assert_eq!(ids(&index, RawSearch::default()).len(), 4);
}

#[test]
fn the_copy_answers_in_the_order_asked_and_follows_changes_and_deletions() {
    let mut coupons = set();
    let index = index(&coupons);
    let wanted: Vec<CouponId> = [3, 1, 99].into_iter().filter_map(CouponId::new).collect();
    let names = |index: &TantivySearch| -> Vec<(i64, String)> {
        index
            .current(&wanted)
            .unwrap()
            .into_iter()
            .map(|coupon| (coupon.id.get(), coupon.name))
            .collect()
    };
    assert_eq!(
        names(&index),
        [(3, coupons[2].name.clone()), (1, coupons[0].name.clone())],
        "an id it does not hold is left out"
    );
    coupons[0].name = "Zanzibar beans".to_owned();
    coupons[2].is_deleted = true;
    index.inner.upsert(&coupons[..]).unwrap();
    assert_eq!(names(&index), [(1, "Zanzibar beans".to_owned())]);
}

#[tokio::test]
async fn results_are_rendered_on_the_search_threads() {
    let index = TantivySearch::new(0).unwrap();
    let rendered = index
        .render(Box::new(|| {
            Ok(std::thread::current()
                .name()
                .unwrap_or_default()
                .as_bytes()
                .to_vec())
        }))
        .await
        .unwrap();
    assert!(rendered.starts_with(b"search-"), "{rendered:?}");
    let failed = index.render(Box::new(|| Err("no JSON".into()))).await;
    assert!(
        matches!(failed, Err(SearchIndexError::Render(_))),
        "{failed:?}"
    );
}
