//! OpenSearch as the search engine (Elasticsearch 7+ speaks the same API for what is
//! used here): typo-tolerant prefix matching over name and description. The index
//! holds only what searching needs; results are loaded from MySQL by id.
//!
//! Written against the documented REST API: create index with a mapping, `_doc` writes
//! with `refresh=wait_for` (searchable when the call returns), `_bulk`, `_search`.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::config::SearchSettings;
use crate::domain::coupon::{Coupon, CouponId};
use crate::domain::ports::{SearchIndex, SearchIndexError};
use crate::domain::search::{SearchQuery, SearchSort, StatusFilter};

/// Documents per bulk request when the index is rebuilt.
const BULK_CHUNK: usize = 500;

pub struct OpenSearch {
    http: reqwest::Client,
    /// `<url>/<index>`.
    index_url: String,
}

impl OpenSearch {
    pub fn new(settings: &SearchSettings) -> Result<Self, SearchIndexError> {
        let timeout = Duration::from_millis(settings.opensearch_timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| SearchIndexError::Unavailable(e.into()))?;
        Ok(Self {
            http,
            index_url: format!(
                "{}/{}",
                settings.opensearch_url.trim_end_matches('/'),
                settings.opensearch_index
            ),
        })
    }

    /// Creates the index with its mapping unless it exists.
    pub async fn ensure_index(&self) -> Result<(), SearchIndexError> {
        let response = self
            .http
            .put(&self.index_url)
            .json(&mapping())
            .send()
            .await
            .map_err(call_failed)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: Value = response.json().await.map_err(call_failed)?;
        if body["error"]["type"] == "resource_already_exists_exception" {
            return Ok(());
        }
        Err(SearchIndexError::Unexpected(format!(
            "creating the index answered {status}: {}",
            body["error"]["reason"]
        )))
    }

    async fn expect_success(
        response: Result<reqwest::Response, reqwest::Error>,
        what: &str,
        also_fine: Option<reqwest::StatusCode>,
    ) -> Result<Value, SearchIndexError> {
        let response = response.map_err(call_failed)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(SearchIndexError::Unavailable(
                format!("{what} answered {status}").into(),
            ));
        }
        let body: Value = response.json().await.map_err(call_failed)?;
        if status.is_success() || Some(status) == also_fine {
            Ok(body)
        } else {
            Err(SearchIndexError::Unexpected(format!(
                "{what} answered {status}: {}",
                body["error"]["reason"]
            )))
        }
    }
}

fn call_failed(e: reqwest::Error) -> SearchIndexError {
    if e.is_timeout() {
        SearchIndexError::Timeout
    } else {
        SearchIndexError::Unavailable(e.into())
    }
}

fn mapping() -> Value {
    json!({
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "long" },
                "name": { "type": "text" },
                "description": { "type": "text" },
                "price_cents": { "type": "long" },
                "sale_starts_at": { "type": "date" },
                "sale_ends_at": { "type": "date" }
            }
        }
    })
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the index holds of a coupon.
fn document(coupon: &Coupon) -> Value {
    json!({
        "id": coupon.id.get(),
        "name": coupon.name,
        "description": coupon.description,
        "price_cents": coupon.price_cents,
        "sale_starts_at": time(coupon.sale.starts_at),
        "sale_ends_at": time(coupon.sale.ends_at),
    })
}

/// The `_search` body of a query: its page plus one hit (to tell whether more follow).
fn search_body(query: &SearchQuery, now: DateTime<Utc>) -> Value {
    let now = time(now);
    let mut filter = Vec::new();
    match query.status {
        None => {}
        Some(StatusFilter::Live) => {
            filter.push(json!({ "range": { "sale_starts_at": { "lte": now } } }));
            filter.push(json!({ "range": { "sale_ends_at": { "gt": now } } }));
        }
        Some(StatusFilter::Upcoming) => {
            filter.push(json!({ "range": { "sale_starts_at": { "gt": now } } }));
        }
        Some(StatusFilter::Ended) => {
            filter.push(json!({ "range": { "sale_ends_at": { "lte": now } } }));
        }
    }
    let mut price = serde_json::Map::new();
    if let Some(min) = query.min_price_cents {
        price.insert("gte".into(), min.into());
    }
    if let Some(max) = query.max_price_cents {
        price.insert("lte".into(), max.into());
    }
    if !price.is_empty() {
        filter.push(json!({ "range": { "price_cents": price } }));
    }
    let must: Vec<Value> = match &query.terms {
        // Every term must match somewhere, as a prefix of a word or with a typo or two
        // (by its length), like the embedded engine's prefixes plus typo tolerance.
        Some(terms) => terms.iter().map(|term| term_clause(term)).collect(),
        None => vec![json!({ "match_all": {} })],
    };
    let sort = match (query.sort, &query.terms) {
        (SearchSort::Relevance, Some(_)) => json!(["_score", { "id": "desc" }]),
        (SearchSort::Relevance | SearchSort::Newest, _) => json!([{ "id": "desc" }]),
        (SearchSort::EndingSoon, _) => json!([{ "sale_ends_at": "asc" }, { "id": "asc" }]),
        (SearchSort::Price, _) => json!([{ "price_cents": "asc" }, { "id": "asc" }]),
        (SearchSort::PriceDesc, _) => json!([{ "price_cents": "desc" }, { "id": "desc" }]),
    };
    json!({
        "from": query.offset(),
        "size": query.size + 1,
        "_source": false,
        "track_total_hits": false,
        "query": { "bool": { "must": must, "filter": filter } },
        "sort": sort
    })
}

/// One term: a word it starts, or a word it is a typo of; name matches weigh three
/// times description matches.
fn term_clause(term: &str) -> Value {
    let fields = json!(["name^3", "description"]);
    json!({
        "bool": {
            "should": [
                { "multi_match": {
                    "query": term,
                    "fields": fields,
                    "fuzziness": "AUTO",
                    "prefix_length": 1
                }},
                { "multi_match": { "query": term, "fields": fields, "type": "phrase_prefix" } }
            ],
            "minimum_should_match": 1
        }
    })
}

/// The ids of a `_search` answer, in order.
fn hit_ids(body: &Value) -> Result<Vec<CouponId>, SearchIndexError> {
    let hits = body["hits"]["hits"]
        .as_array()
        .ok_or_else(|| SearchIndexError::Unexpected("a search answer without hits.hits".into()))?;
    hits.iter()
        .map(|hit| {
            hit["_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .and_then(CouponId::new)
                .ok_or_else(|| {
                    SearchIndexError::Unexpected(format!("a hit with _id {}", hit["_id"]))
                })
        })
        .collect()
}

/// The NDJSON `_bulk` body that makes the index hold exactly these coupons' state:
/// each one written, or removed when deleted.
fn bulk_body(coupons: &[Coupon]) -> String {
    let mut body = String::new();
    for coupon in coupons {
        let id = coupon.id.get().to_string();
        if coupon.is_deleted {
            body.push_str(&json!({ "delete": { "_id": id } }).to_string());
            body.push('\n');
        } else {
            body.push_str(&json!({ "index": { "_id": id } }).to_string());
            body.push('\n');
            body.push_str(&document(coupon).to_string());
            body.push('\n');
        }
    }
    body
}

#[async_trait::async_trait]
impl SearchIndex for OpenSearch {
    async fn search(
        &self,
        query: &SearchQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponId>, SearchIndexError> {
        if !query.can_match() {
            return Ok(Vec::new());
        }
        let response = self
            .http
            .post(format!("{}/_search", self.index_url))
            .json(&search_body(query, now))
            .send()
            .await;
        let body = Self::expect_success(response, "search", None).await?;
        hit_ids(&body)
    }

    async fn sync(&self, coupon: &Coupon) -> Result<(), SearchIndexError> {
        let url = format!(
            "{}/_doc/{}?refresh=wait_for",
            self.index_url,
            coupon.id.get()
        );
        if coupon.is_deleted {
            let response = self.http.delete(url).send().await;
            // Not there is as good as removed.
            Self::expect_success(response, "delete", Some(reqwest::StatusCode::NOT_FOUND)).await?;
        } else {
            let response = self.http.put(url).json(&document(coupon)).send().await;
            Self::expect_success(response, "index", None).await?;
        }
        Ok(())
    }

    async fn rebuild(&self, coupons: &[Coupon]) -> Result<(), SearchIndexError> {
        self.ensure_index().await?;
        for chunk in coupons.chunks(BULK_CHUNK) {
            let response = self
                .http
                .post(format!("{}/_bulk?refresh=wait_for", self.index_url))
                .header("Content-Type", "application/x-ndjson")
                .body(bulk_body(chunk))
                .send()
                .await;
            let body = Self::expect_success(response, "bulk", None).await?;
            // A delete of a document never indexed reports 404: that is fine.
            let failed = body["items"].as_array().into_iter().flatten().find(|item| {
                let (_, result) = item.as_object().and_then(|o| o.iter().next()).unzip();
                result.is_some_and(|r| r["error"].is_object())
            });
            if let Some(item) = failed {
                return Err(SearchIndexError::Unexpected(format!(
                    "bulk item failed: {item}"
                )));
            }
        }
        Ok(())
    }

    fn keeps_a_copy(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "opensearch"
    }
}

#[cfg(test)]
mod tests;
