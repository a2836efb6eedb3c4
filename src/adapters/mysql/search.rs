//! The embedded search engine: InnoDB full-text indexes on the coupons table, queried
//! in boolean mode with every term as a required prefix (`+cof*`). A committed admin
//! change is searchable from the next statement, on every instance, with nothing to
//! keep in step. No typo tolerance: InnoDB has none (the OpenSearch adapter has it).

use chrono::{DateTime, Utc};
use diesel::mysql::Mysql;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Datetime, Text};
use diesel_async::RunQueryDsl;

use super::{MysqlError, MysqlPool};
use crate::domain::coupon::{Coupon, CouponId};
use crate::domain::ports::{SearchIndex, SearchIndexError};
use crate::domain::search::{SearchQuery, SearchSort, StatusFilter};

pub struct MysqlSearch {
    mysql: MysqlPool,
}

impl MysqlSearch {
    pub fn new(mysql: MysqlPool) -> Self {
        Self { mysql }
    }
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// What a placeholder of the built statement takes.
#[derive(Debug, Clone, PartialEq)]
enum Bind {
    Text(String),
    Int(i64),
    Time(chrono::NaiveDateTime),
}

/// The statement for a search and its values in placeholder order. Only fixed SQL text
/// is concatenated: every value from the shopper is bound.
fn statement(query: &SearchQuery, now: DateTime<Utc>) -> (String, Vec<Bind>) {
    let mut sql = String::from("SELECT id FROM coupons WHERE is_deleted = FALSE");
    let mut binds = Vec::new();
    let now = now.naive_utc();
    let against = query.terms.as_ref().map(|terms| {
        terms
            .iter()
            .map(|t| format!("+{t}*"))
            .collect::<Vec<_>>()
            .join(" ")
    });
    if let Some(against) = &against {
        sql.push_str(" AND MATCH(name, description) AGAINST (? IN BOOLEAN MODE)");
        binds.push(Bind::Text(against.clone()));
    }
    match query.status {
        None => {}
        Some(StatusFilter::Live) => {
            sql.push_str(" AND sale_starts_at <= ? AND sale_ends_at > ?");
            binds.extend([Bind::Time(now), Bind::Time(now)]);
        }
        Some(StatusFilter::Upcoming) => {
            sql.push_str(" AND sale_starts_at > ?");
            binds.push(Bind::Time(now));
        }
        Some(StatusFilter::Ended) => {
            sql.push_str(" AND sale_ends_at <= ?");
            binds.push(Bind::Time(now));
        }
    }
    if let Some(min) = query.min_price_cents {
        sql.push_str(" AND price_cents >= ?");
        binds.push(Bind::Int(min));
    }
    if let Some(max) = query.max_price_cents {
        sql.push_str(" AND price_cents <= ?");
        binds.push(Bind::Int(max));
    }
    match (query.sort, &against) {
        (SearchSort::Relevance, Some(against)) => {
            // A name match counts three times a match anywhere.
            sql.push_str(
                " ORDER BY 2 * MATCH(name) AGAINST (? IN BOOLEAN MODE) \
                 + MATCH(name, description) AGAINST (? IN BOOLEAN MODE) DESC, id DESC",
            );
            binds.extend([Bind::Text(against.clone()), Bind::Text(against.clone())]);
        }
        (SearchSort::Relevance | SearchSort::Newest, _) => sql.push_str(" ORDER BY id DESC"),
        (SearchSort::EndingSoon, _) => sql.push_str(" ORDER BY sale_ends_at, id"),
        (SearchSort::Price, _) => sql.push_str(" ORDER BY price_cents, id"),
        (SearchSort::PriceDesc, _) => sql.push_str(" ORDER BY price_cents DESC, id DESC"),
    }
    sql.push_str(" LIMIT ? OFFSET ?");
    binds.push(Bind::Int(i64::from(query.size) + 1));
    binds.push(Bind::Int(i64::try_from(query.offset()).unwrap_or(i64::MAX)));
    (sql, binds)
}

fn bind_all(
    sql: String,
    binds: Vec<Bind>,
) -> BoxedSqlQuery<'static, Mysql, diesel::query_builder::SqlQuery> {
    let mut query = diesel::sql_query(sql).into_boxed::<Mysql>();
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind::<Text, _>(text),
            Bind::Int(n) => query.bind::<BigInt, _>(n),
            Bind::Time(at) => query.bind::<Datetime, _>(at),
        };
    }
    query
}

#[async_trait::async_trait]
impl SearchIndex for MysqlSearch {
    async fn search(
        &self,
        query: &SearchQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponId>, SearchIndexError> {
        if !query.can_match() {
            return Ok(Vec::new());
        }
        let (sql, binds) = statement(query, now);
        let rows: Vec<IdRow> = self
            .mysql
            .with_conn(async |conn| Ok(bind_all(sql, binds).load(conn).await?))
            .await
            .map_err(|e: MysqlError| SearchIndexError::Unavailable(e.into()))?;
        Ok(rows
            .into_iter()
            .filter_map(|row| CouponId::new(row.id))
            .collect())
    }

    async fn sync(&self, _coupon: &Coupon) -> Result<(), SearchIndexError> {
        Ok(())
    }

    async fn rebuild(&self, _coupons: &[Coupon]) -> Result<(), SearchIndexError> {
        Ok(())
    }

    fn keeps_a_copy(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "mariadb"
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::search::RawSearch;

    fn query(raw: RawSearch<'_>) -> SearchQuery {
        SearchQuery::parse(raw, 20, 100).unwrap()
    }

    #[test]
    fn terms_become_required_prefixes_and_every_value_is_bound() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let (sql, binds) = statement(
            &query(RawSearch {
                q: Some("coffee' OR 1=1 -- beans"),
                status: Some("live"),
                min_price: Some("100"),
                page: Some("3"),
                ..RawSearch::default()
            }),
            now,
        );
        assert_eq!(
            sql,
            "SELECT id FROM coupons WHERE is_deleted = FALSE \
             AND MATCH(name, description) AGAINST (? IN BOOLEAN MODE) \
             AND sale_starts_at <= ? AND sale_ends_at > ? AND price_cents >= ? \
             ORDER BY 2 * MATCH(name) AGAINST (? IN BOOLEAN MODE) \
             + MATCH(name, description) AGAINST (? IN BOOLEAN MODE) DESC, id DESC \
             LIMIT ? OFFSET ?"
        );
        let against = Bind::Text("+coffee* +beans*".to_owned());
        assert_eq!(binds[0], against);
        assert_eq!(binds[4], against);
        assert_eq!(binds[6..], [Bind::Int(21), Bind::Int(40)]);
    }

    #[test]
    fn without_terms_the_sort_decides_the_order() {
        let now = Utc::now();
        let (sql, _) = statement(&query(RawSearch::default()), now);
        assert!(sql.ends_with("ORDER BY id DESC LIMIT ? OFFSET ?"), "{sql}");
        let (sql, binds) = statement(
            &query(RawSearch {
                sort: Some("ending_soon"),
                ..RawSearch::default()
            }),
            now,
        );
        assert!(sql.contains("ORDER BY sale_ends_at, id LIMIT"), "{sql}");
        assert_eq!(binds.len(), 2);
    }
}
