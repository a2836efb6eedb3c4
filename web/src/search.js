// Coupon search on the list page: the filters live in the URL query (the back button and
// shared links restore them), under the API's own names. Prices are cents in the URL,
// as the API takes them; shoppers type them in currency units.
import { formatPrice } from './format.js';

/** Any of these in the list page's URL makes it a search. */
export const SEARCH_KEYS = ['q', 'status', 'sort', 'min_price', 'max_price'];
export const DEFAULT_SIZE = 12;
export const MAX_PAGE = 50;
export const MAX_QUERY_CHARS = 100;
const MAX_PRICE_CENTS = 100_000_000;

export const STATUSES = [
  { value: '', label: 'All' },
  { value: 'live', label: 'Live' },
  { value: 'upcoming', label: 'Upcoming' },
  { value: 'ended', label: 'Ended' },
];

export const SORTS = [
  { value: 'relevance', label: 'Relevance', needsQuery: true },
  { value: 'ending_soon', label: 'Ending soon' },
  { value: 'price', label: 'Price low → high' },
  { value: 'price_desc', label: 'Price high → low' },
  { value: 'newest', label: 'Newest' },
];

const one = (v) => String((Array.isArray(v) ? v[0] : v) ?? '').trim();

export const isSearch = (query) => SEARCH_KEYS.some((key) => query[key] !== undefined);
export const defaultSort = (q) => (q ? 'relevance' : 'newest');

/** The route's query → the search's filters (values as the API takes them). */
export function filtersFrom(query) {
  const q = one(query.q);
  let sort = one(query.sort);
  if (!sort || (sort === 'relevance' && !q)) sort = defaultSort(q);
  return {
    q,
    status: one(query.status),
    min_price: one(query.min_price),
    max_price: one(query.max_price),
    sort,
    page: Math.max(1, parseInt(one(query.page), 10) || 1),
    size: one(query.size),
  };
}

/**
 * Filters → the route's query, without empty values or the default sort. Without `q`
 * and any filter, the sort stays so that the page keeps showing the search.
 */
export function queryFrom(f) {
  const query = {};
  for (const key of ['q', 'status', 'min_price', 'max_price']) if (f[key]) query[key] = f[key];
  if (f.sort && (f.sort !== defaultSort(f.q) || Object.keys(query).length === 0)) query.sort = f.sort;
  if (f.page > 1) query.page = String(f.page);
  if (f.size) query.size = f.size;
  return query;
}

/** Cents from the URL → what the price input shows ("12", "12.50"). */
export function priceText(cents) {
  if (!/^\d+$/.test(cents)) return cents;
  const n = Number(cents);
  return n % 100 === 0 ? String(n / 100) : (n / 100).toFixed(2);
}

/** What a shopper typed → cents as a string ('' for none); throws a sentence if invalid. */
export function priceCents(text) {
  const t = String(text ?? '').trim().replace(',', '.');
  if (t === '') return '';
  const n = Number(t);
  if (!Number.isFinite(n) || n < 0) throw new Error('Enter an amount of 0 or more, e.g. 9.99.');
  const cents = Math.round(n * 100);
  if (cents > MAX_PRICE_CENTS) throw new Error(`Enter at most ${formatPrice(MAX_PRICE_CENTS)}.`);
  return String(cents);
}

/** A sentence for a 422 INVALID_SEARCH, to show next to `err.field`. */
export function fieldErrorText(err) {
  const message = err.message || '';
  switch (err.field) {
    case 'q':
      return /empty/.test(message)
        ? 'Type a word to search for.'
        : `Use at most ${MAX_QUERY_CHARS} characters.`;
    case 'status':
      return 'Choose All, Live, Upcoming or Ended.';
    case 'min_price':
    case 'max_price':
      return /below/.test(message)
        ? 'The highest price must not be below the lowest.'
        : `Enter an amount from ${formatPrice(0)} to ${formatPrice(MAX_PRICE_CENTS)}.`;
    case 'sort':
      return 'Choose an order from the list.';
    case 'page':
      return `Results go ${MAX_PAGE} pages deep at most.`;
    default:
      return message ? `${err.field || 'Search'}: ${message}.` : 'That search is not valid.';
  }
}
