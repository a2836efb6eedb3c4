use chrono::TimeZone;

use super::*;
use crate::domain::coupon::SaleWindow;
use crate::domain::search::RawSearch;

fn query(raw: RawSearch<'_>) -> SearchQuery {
    SearchQuery::parse(raw, 20, 100).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

#[test]
fn a_search_asks_for_typo_tolerant_prefixes_with_the_filters() {
    let body = search_body(
        &query(RawSearch {
            q: Some("Cofee bea"),
            status: Some("live"),
            min_price: Some("100"),
            max_price: Some("900"),
            page: Some("2"),
            size: Some("10"),
            ..RawSearch::default()
        }),
        now(),
    );
    assert_eq!(
        body,
        json!({
            "from": 10,
            "size": 11,
            "_source": false,
            "track_total_hits": false,
            "query": { "bool": {
                "must": [term_clause("cofee"), term_clause("bea")],
                "filter": [
                    { "range": { "sale_starts_at": { "lte": "2026-11-29T12:00:00.000Z" } } },
                    { "range": { "sale_ends_at": { "gt": "2026-11-29T12:00:00.000Z" } } },
                    { "range": { "price_cents": { "gte": 100, "lte": 900 } } }
                ]
            }},
            "sort": ["_score", { "id": "desc" }]
        })
    );
}

#[test]
fn without_q_every_coupon_is_a_candidate_in_the_sort_order() {
    let body = search_body(
        &query(RawSearch {
            sort: Some("ending_soon"),
            status: Some("upcoming"),
            ..RawSearch::default()
        }),
        now(),
    );
    assert_eq!(body["query"]["bool"]["must"], json!([{ "match_all": {} }]));
    assert_eq!(
        body["query"]["bool"]["filter"],
        json!([{ "range": { "sale_starts_at": { "gt": "2026-11-29T12:00:00.000Z" } } }])
    );
    assert_eq!(
        body["sort"],
        json!([{ "sale_ends_at": "asc" }, { "id": "asc" }])
    );
}

/// An answer of OpenSearch 2.x to a `_search` with `_source: false` (the documented
/// shape: docs.opensearch.org, "Search" API).
const RECORDED_SEARCH: &str = r#"{"took":4,"timed_out":false,
  "_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
  "hits":{"max_score":null,"hits":[
    {"_index":"coupons","_id":"42","_score":2.1,"sort":[2.1,42]},
    {"_index":"coupons","_id":"7","_score":0.4,"sort":[0.4,7]}]}}"#;

#[test]
fn hits_are_read_in_order() {
    let body: Value = serde_json::from_str(RECORDED_SEARCH).unwrap();
    let ids: Vec<i64> = hit_ids(&body).unwrap().iter().map(|id| id.get()).collect();
    assert_eq!(ids, [42, 7]);
    let bad = json!({ "hits": { "hits": [{ "_id": "x" }] } });
    assert!(matches!(
        hit_ids(&bad),
        Err(SearchIndexError::Unexpected(_))
    ));
    assert!(matches!(
        hit_ids(&json!({})),
        Err(SearchIndexError::Unexpected(_))
    ));
}

#[test]
fn a_rebuild_writes_live_coupons_and_removes_deleted_ones() {
    let coupon = |id: i64, is_deleted: bool| Coupon {
        id: CouponId::new(id).unwrap(),
        name: "Coffee".into(),
        description: "Beans".into(),
        price_cents: 500,
        image_key: None,
        total_quantity: 10,
        per_user_limit: 1,
        sale: SaleWindow {
            starts_at: now(),
            ends_at: now() + chrono::TimeDelta::hours(1),
        },
        is_deleted,
        waiting_room_per_sec: None,
    };
    let body = bulk_body(&[coupon(1, false), coupon(2, true)]);
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], json!({ "index": { "_id": "1" } }));
    assert_eq!(lines[1]["name"], "Coffee");
    assert_eq!(lines[1]["sale_ends_at"], "2026-11-29T13:00:00.000Z");
    assert_eq!(lines[2], json!({ "delete": { "_id": "2" } }));
    assert!(body.ends_with('\n'));
}

#[test]
fn each_term_matches_as_a_prefix_or_with_typos() {
    let clause = term_clause("cofee");
    let should = clause["bool"]["should"].as_array().unwrap();
    assert_eq!(clause["bool"]["minimum_should_match"], 1);
    assert_eq!(should[0]["multi_match"]["fuzziness"], "AUTO");
    assert_eq!(should[1]["multi_match"]["type"], "phrase_prefix");
    assert_eq!(
        should[0]["multi_match"]["fields"],
        json!(["name^3", "description"])
    );
}
