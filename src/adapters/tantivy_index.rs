//! The embedded search engine: a tantivy index in this process's memory, filled from
//! MySQL at start and kept current by the admin changes made here and by following the
//! coupons table for the ones made elsewhere. A search costs this process a fraction
//! of a millisecond and the database nothing, so search load grows with the api
//! replicas instead of landing on the one MySQL primary.
//!
//! Every term must match as a word prefix (`cof` finds "Coffee") or as a whole word
//! within a typo or two (`cofee` finds "Coffee", as OpenSearch's `AUTO` fuzziness
//! does). A name match weighs four times a description match, an exact prefix twice a
//! typo. Filters and sorts read the columnar fast fields; ties go by id.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::index::SegmentReader;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query};
use tantivy::schema::{FAST, Field, INDEXED, Schema, TEXT};
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyDocument, Term};

use crate::domain::coupon::{Coupon, CouponId};
use crate::domain::ports::{RenderWork, SearchIndex, SearchIndexError};
use crate::domain::search::{SearchQuery, SearchSort};
use threads::SearchThreads;

mod threads;

/// The writer's memory before it cuts a segment: tantivy's minimum, far more than a
/// catalog's text needs.
const WRITER_BUDGET: usize = 15_000_000;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    description: Field,
    price: Field,
    starts: Field,
    ends: Field,
}

struct Inner {
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    /// The coupons as last applied, so that results need no read of MySQL. Changed
    /// only while holding the writer, after the index has taken the same change.
    rows: RwLock<HashMap<CouponId, Coupon>>,
}

pub struct TantivySearch {
    inner: Arc<Inner>,
    threads: SearchThreads,
}

impl TantivySearch {
    /// `niceness`: how many nice levels below the process the search threads run.
    pub fn new(niceness: u8) -> Result<Self, SearchIndexError> {
        let mut schema = Schema::builder();
        let fields = Fields {
            id: schema.add_u64_field("id", INDEXED | FAST),
            name: schema.add_text_field("name", TEXT),
            description: schema.add_text_field("description", TEXT),
            price: schema.add_i64_field("price", FAST),
            starts: schema.add_i64_field("starts", FAST),
            ends: schema.add_i64_field("ends", FAST),
        };
        let index = Index::create_in_ram(schema.build());
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_BUDGET)
            .map_err(failed)?;
        // Every search walks each segment's term dictionaries, and every follower pass
        // commits a small segment: merge as soon as two are alike, so the index stays at a
        // few segments (a catalogue is small enough that merging costs little).
        let mut merges = LogMergePolicy::default();
        merges.set_min_num_segments(2);
        writer.set_merge_policy(Box::new(merges));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(failed)?;
        Ok(Self {
            inner: Arc::new(Inner {
                fields,
                writer: Mutex::new(writer),
                reader,
                rows: RwLock::default(),
            }),
            threads: SearchThreads::start(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                niceness,
            )
            .map_err(|e| SearchIndexError::Unavailable(e.into()))?,
        })
    }

    /// Runs blocking index work off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SearchIndexError> + Send + 'static,
    ) -> Result<T, SearchIndexError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| SearchIndexError::Unavailable(e.into()))?
    }
}

impl Inner {
    /// Replaces these coupons in the index (a deleted one is only removed) and makes
    /// the result searchable before returning.
    fn upsert(&self, coupons: &[Coupon]) -> Result<(), SearchIndexError> {
        let f = self.fields;
        // A panic elsewhere while holding the writer leaves nothing half-applied that
        // matters: its uncommitted operations are rolled back before this batch.
        let mut writer = match self.writer.lock() {
            Ok(writer) => writer,
            Err(poisoned) => {
                let mut writer = poisoned.into_inner();
                let _ = writer.rollback();
                self.writer.clear_poison();
                writer
            }
        };
        for coupon in coupons {
            let id = coupon.id.get().unsigned_abs();
            writer.delete_term(Term::from_field_u64(f.id, id));
            if coupon.is_deleted {
                continue;
            }
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.id, id);
            doc.add_text(f.name, &coupon.name);
            doc.add_text(f.description, &coupon.description);
            doc.add_i64(f.price, coupon.price_cents);
            doc.add_i64(f.starts, coupon.sale.starts_at.timestamp_micros());
            doc.add_i64(f.ends, coupon.sale.ends_at.timestamp_micros());
            writer.add_document(doc).map_err(failed)?;
        }
        writer.commit().map_err(failed)?;
        self.reader.reload().map_err(failed)?;
        // Plain data: a panic while it was held cannot leave a row half-written.
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        for coupon in coupons {
            if coupon.is_deleted {
                rows.remove(&coupon.id);
            } else {
                rows.insert(coupon.id, coupon.clone());
            }
        }
        Ok(())
    }

    fn current(&self, ids: &[CouponId]) -> Vec<Coupon> {
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        ids.iter().filter_map(|id| rows.get(id).cloned()).collect()
    }

    fn search(
        &self,
        query: &SearchQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponId>, SearchIndexError> {
        let scored = query.terms.is_some() && query.sort == SearchSort::Relevance;
        let collector = Matches {
            query,
            now: now.timestamp_micros(),
            scored,
        };
        let searcher = self.reader.searcher();
        let mut hits = searcher
            .search(&*self.query(query), &collector)
            .map_err(failed)?;
        order(&mut hits, query.sort, scored);
        let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
        Ok(hits
            .into_iter()
            .skip(offset)
            .take(query.size as usize + 1)
            .filter_map(|hit| CouponId::new(i64::try_from(hit.id).ok()?))
            .collect())
    }

    /// Every term required; each may match the name or the description, by prefix or
    /// with typos.
    fn query(&self, query: &SearchQuery) -> Box<dyn Query> {
        let Some(terms) = &query.terms else {
            return Box::new(AllQuery);
        };
        let f = self.fields;
        let required = terms
            .iter()
            .map(|term| {
                let typos = allowed_typos(term);
                let mut ways: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for (field, weight) in [(f.name, 4.0), (f.description, 1.0)] {
                    let exact = Term::from_field_text(field, term);
                    ways.push(should(
                        FuzzyTermQuery::new_prefix(exact.clone(), 0, true),
                        weight,
                    ));
                    if typos > 0 {
                        ways.push(should(
                            FuzzyTermQuery::new(exact, typos, true),
                            weight / 2.0,
                        ));
                    }
                }
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(ways)) as Box<dyn Query>,
                )
            })
            .collect();
        Box::new(BooleanQuery::new(required))
    }
}

fn should(query: FuzzyTermQuery, weight: Score) -> (Occur, Box<dyn Query>) {
    (
        Occur::Should,
        Box::new(BoostQuery::new(Box::new(query), weight)),
    )
}

/// Edits a whole-word match may need, by the term's length: none up to 2 characters,
/// one up to 5, two beyond (OpenSearch's `AUTO`).
fn allowed_typos(term: &str) -> u8 {
    match term.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

/// A matching coupon with what the sorts need.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hit {
    id: u64,
    score: Score,
    price: i64,
    ends: i64,
}

/// The hits in the query's order; ties by id (descending where the order is).
fn order(hits: &mut [Hit], sort: SearchSort, scored: bool) {
    match sort {
        SearchSort::Relevance if scored => {
            hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(b.id.cmp(&a.id)))
        }
        SearchSort::Relevance | SearchSort::Newest => hits.sort_unstable_by_key(|h| Reverse(h.id)),
        SearchSort::EndingSoon => hits.sort_unstable_by_key(|h| (h.ends, h.id)),
        SearchSort::Price => hits.sort_unstable_by_key(|h| (h.price, h.id)),
        SearchSort::PriceDesc => hits.sort_unstable_by_key(|h| Reverse((h.price, h.id))),
    }
}

/// Collects the matches that pass the status and price filters.
struct Matches<'q> {
    query: &'q SearchQuery,
    /// Microseconds since the epoch, as the sale windows are stored.
    now: i64,
    scored: bool,
}

struct SegmentMatches {
    /// The query's own copy: each segment's collector owns its filters.
    query: SearchQuery,
    now: i64,
    id: Column<u64>,
    price: Column<i64>,
    starts: Column<i64>,
    ends: Column<i64>,
    hits: Vec<Hit>,
}

impl Collector for Matches<'_> {
    type Fruit = Vec<Hit>;
    type Child = SegmentMatches;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<SegmentMatches> {
        let fast = segment.fast_fields();
        Ok(SegmentMatches {
            query: self.query.clone(),
            now: self.now,
            id: fast.u64("id")?,
            price: fast.i64("price")?,
            starts: fast.i64("starts")?,
            ends: fast.i64("ends")?,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scored
    }

    fn merge_fruits(&self, segments: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        Ok(segments.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let (Some(id), Some(price), Some(starts), Some(ends)) = (
            self.id.first(doc),
            self.price.first(doc),
            self.starts.first(doc),
            self.ends.first(doc),
        ) else {
            return;
        };
        if self.query.admits_micros(price, starts, ends, self.now) {
            self.hits.push(Hit {
                id,
                score,
                price,
                ends,
            });
        }
    }

    fn harvest(self) -> Vec<Hit> {
        self.hits
    }
}

fn failed(error: tantivy::TantivyError) -> SearchIndexError {
    SearchIndexError::Unavailable(error.into())
}

#[async_trait::async_trait]
impl SearchIndex for TantivySearch {
    async fn search(
        &self,
        query: &SearchQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponId>, SearchIndexError> {
        if !query.can_match() {
            return Ok(Vec::new());
        }
        let (query, inner) = (query.clone(), self.inner.clone());
        self.threads
            .run(move || inner.search(&query, now))
            .await
            .unwrap_or_else(|| {
                Err(SearchIndexError::Unavailable(
                    "the search thread stopped".into(),
                ))
            })
    }

    async fn sync(&self, coupon: &Coupon) -> Result<(), SearchIndexError> {
        let coupon = coupon.clone();
        self.blocking(move |inner| inner.upsert(std::slice::from_ref(&coupon)))
            .await
    }

    async fn rebuild(&self, coupons: &[Coupon]) -> Result<(), SearchIndexError> {
        let coupons = coupons.to_vec();
        self.blocking(move |inner| inner.upsert(&coupons)).await
    }

    async fn render(&self, work: RenderWork) -> Result<Vec<u8>, SearchIndexError> {
        self.threads
            .run(work)
            .await
            .unwrap_or_else(|| Err("the search thread stopped".into()))
            .map_err(SearchIndexError::Render)
    }

    fn keeps_a_copy(&self) -> bool {
        true
    }

    fn per_instance(&self) -> bool {
        true
    }

    /// The follower keeps the copy within `follow_ms` of MySQL, inside the stated delay.
    fn current(&self, ids: &[CouponId]) -> Option<Vec<Coupon>> {
        Some(self.inner.current(ids))
    }

    fn name(&self) -> &'static str {
        "tantivy"
    }
}

#[cfg(test)]
mod tests;
