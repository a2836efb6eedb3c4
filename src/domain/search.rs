//! Coupon search: what a shopper may ask for (validated here), the terms a query
//! matches, and the marking of those terms in a result's text.
//!
//! Matching is by word prefix: the term `cof` matches "Coffee". Terms shorter than
//! [`limits::MIN_TERM_CHARS`] and common stopwords are not indexed by the embedded
//! engine, so they are dropped here for every engine alike; a query left with no term
//! matches nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::coupon::{SaleState, SaleWindow};

pub mod limits {
    /// Longest accepted query, in characters.
    pub const MAX_QUERY_CHARS: usize = 100;
    /// Shorter words are not indexed (MariaDB's `innodb_ft_min_token_size`).
    pub const MIN_TERM_CHARS: usize = 3;
    /// Terms kept from one query; the rest are ignored.
    pub const MAX_TERMS: usize = 8;
    /// Results go this many pages deep: relevance past that is noise, and deep pages
    /// cost the engine the most.
    pub const MAX_PAGE: u32 = 50;
    /// Prices are bounded like a coupon's own price.
    pub const MAX_PRICE_CENTS: i64 = 100_000_000;
    /// Characters of description shown around the first match.
    pub const SNIPPET_CHARS: usize = 160;
}

/// Words never indexed by the embedded engine (InnoDB's default stopword list).
const STOPWORDS: [&str; 35] = [
    "a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from", "how",
    "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "who", "will", "with", "und", "www",
];

/// Where a coupon's sale stands at the time of the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Live,
    Upcoming,
    Ended,
}

impl StatusFilter {
    pub fn matches(self, sale: &SaleWindow, now: DateTime<Utc>) -> bool {
        self.is(sale.state(now))
    }

    /// Whether a sale in this state has this status.
    pub fn is(self, state: SaleState) -> bool {
        matches!(
            (self, state),
            (Self::Live, SaleState::Open)
                | (Self::Upcoming, SaleState::NotStarted)
                | (Self::Ended, SaleState::Ended)
        )
    }
}

/// Result order. Ties are broken by id, so pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    /// Best match first (name matches above description matches); newest without `q`.
    Relevance,
    /// Earliest end of sale first (with `status=live`: closing soonest).
    EndingSoon,
    /// Cheapest first.
    Price,
    /// Dearest first.
    PriceDesc,
    /// Most recently created first.
    Newest,
}

/// A search as the engines receive it: validated and normalised, so equal searches
/// are equal values (the cache key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchQuery {
    /// The indexable terms of `q`, lower-cased, in order, without repeats. `None`: no
    /// `q` (filter and sort only); `Some(empty)`: a `q` with no indexable word.
    pub terms: Option<Vec<String>>,
    pub status: Option<StatusFilter>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    pub sort: SearchSort,
    pub page: u32,
    pub size: u32,
}

/// The query string as received: every value raw, so a bad number gets the same
/// field-named error as an out-of-range one.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawSearch<'a> {
    pub q: Option<&'a str>,
    pub status: Option<&'a str>,
    pub min_price: Option<&'a str>,
    pub max_price: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub page: Option<&'a str>,
    pub size: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSearch {
    pub field: &'static str,
    pub message: &'static str,
}

fn invalid(field: &'static str, message: &'static str) -> InvalidSearch {
    InvalidSearch { field, message }
}

impl SearchQuery {
    pub fn parse(
        raw: RawSearch<'_>,
        default_size: u32,
        max_size: u32,
    ) -> Result<Self, InvalidSearch> {
        let terms = raw.q.map(parse_q).transpose()?;
        let status = match raw.status.map(str::trim) {
            None | Some("") => None,
            Some("live") => Some(StatusFilter::Live),
            Some("upcoming") => Some(StatusFilter::Upcoming),
            Some("ended") => Some(StatusFilter::Ended),
            Some(_) => return Err(invalid("status", "must be live, upcoming or ended")),
        };
        let min_price_cents = price(raw.min_price, "min_price")?;
        let max_price_cents = price(raw.max_price, "max_price")?;
        if let (Some(min), Some(max)) = (min_price_cents, max_price_cents)
            && min > max
        {
            return Err(invalid("max_price", "must not be below min_price"));
        }
        let sort = match raw.sort.map(str::trim) {
            None | Some("") => {
                if terms.is_some() {
                    SearchSort::Relevance
                } else {
                    SearchSort::Newest
                }
            }
            Some("relevance") => SearchSort::Relevance,
            Some("ending_soon") => SearchSort::EndingSoon,
            Some("price") => SearchSort::Price,
            Some("price_desc") => SearchSort::PriceDesc,
            Some("newest") => SearchSort::Newest,
            Some(_) => {
                return Err(invalid(
                    "sort",
                    "must be relevance, ending_soon, price, price_desc or newest",
                ));
            }
        };
        let page = number(raw.page, "page", 1, limits::MAX_PAGE, "must be 1 to 50")?.unwrap_or(1);
        let size = number(
            raw.size,
            "size",
            1,
            max_size,
            "must be 1 to the maximum page size",
        )?
        .unwrap_or(default_size);
        Ok(Self {
            terms,
            status,
            min_price_cents,
            max_price_cents,
            sort,
            page,
            size,
        })
    }

    /// Rows to skip before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }

    /// Whether the query can match anything at all.
    pub fn can_match(&self) -> bool {
        self.terms.as_ref().is_none_or(|terms| !terms.is_empty())
    }

    /// Whether a coupon at this price and with this sale window passes the status and
    /// price filters.
    pub fn admits(&self, price_cents: i64, sale: &SaleWindow, now: DateTime<Utc>) -> bool {
        self.status.is_none_or(|status| status.matches(sale, now))
            && self.min_price_cents.is_none_or(|min| price_cents >= min)
            && self.max_price_cents.is_none_or(|max| price_cents <= max)
    }

    /// [`SearchQuery::admits`] for a sale window in microseconds since the epoch, as a
    /// search index stores it (no date arithmetic per candidate).
    pub fn admits_micros(&self, price_cents: i64, starts: i64, ends: i64, now: i64) -> bool {
        self.status
            .is_none_or(|status| status.is(SaleState::between(starts, ends, now)))
            && self.min_price_cents.is_none_or(|min| price_cents >= min)
            && self.max_price_cents.is_none_or(|max| price_cents <= max)
    }

    /// The terms to mark in results (none without `q`).
    pub fn marked_terms(&self) -> &[String] {
        self.terms.as_deref().unwrap_or(&[])
    }
}

fn parse_q(q: &str) -> Result<Vec<String>, InvalidSearch> {
    let q = q.trim();
    if q.is_empty() {
        return Err(invalid(
            "q",
            "must not be empty (leave it out to list by filters)",
        ));
    }
    if q.chars().count() > limits::MAX_QUERY_CHARS {
        return Err(invalid("q", "must be at most 100 characters"));
    }
    Ok(terms(q))
}

/// The indexable words of `text`, lower-cased, in order, without repeats.
pub fn terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in words(text) {
        let word = word.1.to_lowercase();
        if word.chars().count() >= limits::MIN_TERM_CHARS
            && !STOPWORDS.contains(&word.as_str())
            && !terms.contains(&word)
        {
            terms.push(word);
        }
        if terms.len() == limits::MAX_TERMS {
            break;
        }
    }
    terms
}

fn price(raw: Option<&str>, field: &'static str) -> Result<Option<i64>, InvalidSearch> {
    number(
        raw,
        field,
        0,
        limits::MAX_PRICE_CENTS,
        "must be a whole number of cents, 0 to 100000000",
    )
}

fn number<T>(
    raw: Option<&str>,
    field: &'static str,
    min: T,
    max: T,
    message: &'static str,
) -> Result<Option<T>, InvalidSearch>
where
    T: std::str::FromStr + PartialOrd,
{
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => match value.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(Some(n)),
            _ => Err(invalid(field, message)),
        },
    }
}

/// The words of `text` (runs of letters and digits) with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while rest.peek().is_some_and(|(_, c)| !c.is_alphanumeric()) {
            rest.next();
        }
        let (start, _) = *rest.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = rest.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        Some((start, &text[start..end]))
    })
}

/// A piece of a result's text; `hit` marks a word a term matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Segment {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

/// `text` cut into segments, the words that start with one of `terms` marked.
pub fn highlight(text: &str, terms: &[String]) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut push = |piece: &str, hit: bool| {
        if piece.is_empty() {
            return;
        }
        match segments.last_mut() {
            Some(last) if last.hit == hit && !hit => last.text.push_str(piece),
            _ => segments.push(Segment {
                text: piece.to_owned(),
                hit,
            }),
        }
    };
    let mut done = 0;
    for (start, word) in words(text) {
        let lower = word.to_lowercase();
        if terms.iter().any(|term| lower.starts_with(term.as_str())) {
            push(&text[done..start], false);
            push(word, true);
            done = start + word.len();
        }
    }
    push(&text[done..], false);
    segments
}

/// Up to [`limits::SNIPPET_CHARS`] of `text` around its first match (its start when
/// nothing matches), marked like [`highlight`]; "…" where text was cut.
pub fn snippet(text: &str, terms: &[String]) -> Vec<Segment> {
    let first_hit = words(text)
        .find(|(_, word)| {
            let lower = word.to_lowercase();
            terms.iter().any(|term| lower.starts_with(term.as_str()))
        })
        .map_or(0, |(start, _)| start);
    // Some context before the match, starting at a word.
    let lead = text[..first_hit]
        .char_indices()
        .rev()
        .nth(limits::SNIPPET_CHARS / 4)
        .map_or(0, |(i, _)| i);
    let starts_mid_word = |at: usize| {
        text[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    };
    let start = if lead == 0 {
        0
    } else {
        words(&text[lead..])
            .map(|(offset, _)| lead + offset)
            .find(|&at| !starts_mid_word(at))
            .unwrap_or(first_hit)
            .min(first_hit)
    };
    let end = text[start..]
        .char_indices()
        .nth(limits::SNIPPET_CHARS)
        .map_or(text.len(), |(i, _)| start + i);
    let mut segments = Vec::new();
    if start > 0 {
        segments.push(Segment {
            text: "…".to_owned(),
            hit: false,
        });
    }
    segments.extend(highlight(&text[start..end], terms));
    if end < text.len() {
        segments.push(Segment {
            text: "…".to_owned(),
            hit: false,
        });
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: RawSearch<'_>) -> Result<SearchQuery, InvalidSearch> {
        SearchQuery::parse(raw, 20, 100)
    }

    fn field(raw: RawSearch<'_>) -> &'static str {
        parse(raw).expect_err("should be refused").field
    }

    #[test]
    fn a_query_keeps_its_indexable_words_once_lower_cased() {
        let query = parse(RawSearch {
            q: Some("  The COFFEE of Café coffee, tv-stand  "),
            ..RawSearch::default()
        })
        .unwrap();
        assert_eq!(
            query.terms.as_deref(),
            Some(&["coffee".to_owned(), "café".to_owned(), "stand".to_owned()][..])
        );
        assert_eq!(query.sort, SearchSort::Relevance);
        assert_eq!((query.page, query.size), (1, 20));
    }

    #[test]
    fn a_query_of_stopwords_is_valid_but_matches_nothing() {
        let query = parse(RawSearch {
            q: Some("the of a tv"),
            ..RawSearch::default()
        })
        .unwrap();
        assert!(!query.can_match());
        let browse = parse(RawSearch::default()).unwrap();
        assert!(browse.can_match());
        assert_eq!(browse.sort, SearchSort::Newest);
    }

    #[test]
    fn bad_values_name_their_field() {
        let long = "x".repeat(10_000);
        let cases = [
            (
                RawSearch {
                    q: Some(""),
                    ..RawSearch::default()
                },
                "q",
            ),
            (
                RawSearch {
                    q: Some("   "),
                    ..RawSearch::default()
                },
                "q",
            ),
            (
                RawSearch {
                    q: Some(&long),
                    ..RawSearch::default()
                },
                "q",
            ),
            (
                RawSearch {
                    status: Some("soon"),
                    ..RawSearch::default()
                },
                "status",
            ),
            (
                RawSearch {
                    sort: Some("cheapest"),
                    ..RawSearch::default()
                },
                "sort",
            ),
            (
                RawSearch {
                    min_price: Some("-1"),
                    ..RawSearch::default()
                },
                "min_price",
            ),
            (
                RawSearch {
                    max_price: Some("1.5"),
                    ..RawSearch::default()
                },
                "max_price",
            ),
            (
                RawSearch {
                    min_price: Some("500"),
                    max_price: Some("100"),
                    ..RawSearch::default()
                },
                "max_price",
            ),
            (
                RawSearch {
                    page: Some("0"),
                    ..RawSearch::default()
                },
                "page",
            ),
            (
                RawSearch {
                    page: Some("51"),
                    ..RawSearch::default()
                },
                "page",
            ),
            (
                RawSearch {
                    page: Some("abc"),
                    ..RawSearch::default()
                },
                "page",
            ),
            (
                RawSearch {
                    size: Some("0"),
                    ..RawSearch::default()
                },
                "size",
            ),
            (
                RawSearch {
                    size: Some("101"),
                    ..RawSearch::default()
                },
                "size",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(field(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn equal_searches_are_equal_keys() {
        let a = parse(RawSearch {
            q: Some("Coffee  beans"),
            status: Some("live"),
            ..RawSearch::default()
        });
        let b = parse(RawSearch {
            q: Some("coffee beans "),
            status: Some(" live"),
            sort: Some("relevance"),
            page: Some("1"),
            ..RawSearch::default()
        });
        assert_eq!(a, b);
    }

    fn marked(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| {
                if s.hit {
                    format!("[{}]", s.text)
                } else {
                    s.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn words_starting_with_a_term_are_marked() {
        let terms = vec!["cof".to_owned(), "café".to_owned()];
        assert_eq!(
            marked(&highlight(
                "Coffee at the CAFÉ: decoffeinated coffees.",
                &terms
            )),
            "[Coffee] at the [CAFÉ]: decoffeinated [coffees]."
        );
        assert_eq!(highlight("", &terms), Vec::new());
        assert_eq!(marked(&highlight("no match", &terms)), "no match");
    }

    #[test]
    fn a_snippet_shows_the_first_match_with_context() {
        let terms = vec!["espresso".to_owned()];
        let filler = "word ".repeat(100);
        let text = format!("{filler}a double Espresso here {filler}");
        let shown = marked(&snippet(&text, &terms));
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.contains("double [Espresso] here"), "{shown}");
        let chars = shown.chars().count();
        assert!(chars <= limits::SNIPPET_CHARS + 4, "{chars}");
        // Cut at a word: the first shown word is whole.
        assert!(shown.starts_with("…word "), "{shown}");

        let short = snippet("Espresso", &terms);
        assert_eq!(marked(&short), "[Espresso]");
        let unmatched = snippet(&filler, &terms);
        assert!(marked(&unmatched).ends_with('…'));
        assert!(!marked(&unmatched).starts_with('…'));
    }
}
