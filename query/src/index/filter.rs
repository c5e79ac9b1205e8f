//! A query's filter over a block: each term on a column is answered from the column (every
//! distinct value tested once, with the predicate's own semantics, then ids compared); a
//! full-text word, a `key=value` on another key or a bare key rules out chunks by their token
//! filters; anything else leaves the rows as candidates, which the lines then decide.

use logfmt::{Predicate, Term, TermKind};

use super::IndexError;
use super::bitmap::Bitmap;
use std::sync::Arc;

use super::block::{BlockFile, Ids, Times};
use super::bloom::{Bloom, hash_pair, hash_parts, hash_word, words};
use super::cache::ColumnCache;
use super::columns::{COLUMNS, Source, column_of, is_attribute};
use super::dict::Dict;

/// A column, and the ids a term holds for.
type Truth = (usize, IdSet);

/// Ids a term holds for: a table by id (index 0: the key is absent), and the one id when it
/// is only one (compared directly, not looked up).
#[derive(Debug, Clone)]
pub(crate) struct IdSet {
    table: Vec<bool>,
    one: Option<u32>,
}

impl IdSet {
    fn new(table: Vec<bool>) -> IdSet {
        let mut yes = table.iter().enumerate().filter(|e| *e.1).map(|e| e.0);
        let one = match (yes.next(), yes.next()) {
            (Some(id), None) => u32::try_from(id).ok(),
            _ => None,
        };
        IdSet { table, one }
    }

    fn is_empty(&self) -> bool {
        self.one.is_none() && !self.table.contains(&true)
    }
}

/// A filter, prepared for the app's dictionaries.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Every row.
    All,
    And(Vec<Plan>),
    Or(Vec<Plan>),
    Not(Box<Plan>),
    /// A term on a column: the ids it holds for.
    Column {
        column: usize,
        truth: IdSet,
    },
    /// Rows in chunks whose filter may hold every one of these hashes (a superset).
    Tokens(Vec<u64>),
    /// Rows in chunks whose filter may hold every hash of one of these lists (a superset).
    TokensAny(Vec<Vec<u64>>),
    /// A word or phrase of the message. It holds on a row where it is in a column's value
    /// (`whole`: per pair column, whether each id's value holds it), and may hold on one
    /// where each of its words is in a column's value or in the chunk's filter.
    Text {
        whole: Vec<Truth>,
        words: Vec<(u64, Vec<Truth>)>,
    },
    /// Rows the index cannot tell (a superset: every row).
    Unknown,
}

impl Plan {
    /// The plan of `filter` (`None`: every row), testing at most `budget` dictionary values
    /// (`IndexConfig::max_value_tests`; past it, terms are left to the lines).
    /// Returns whether the budget ran out too.
    pub(crate) fn new(filter: Option<&Predicate>, dicts: &[Dict], budget: usize) -> (Plan, bool) {
        let mut planner = Planner {
            dicts,
            budget,
            exceeded: false,
        };
        let plan = filter.map_or(Plan::All, |p| planner.plan(p.root()));
        (plan, planner.exceeded)
    }
}

/// Plans terms, counting the dictionary values it tests.
struct Planner<'a> {
    dicts: &'a [Dict],
    budget: usize,
    exceeded: bool,
}

impl Planner<'_> {
    /// Takes `n` value tests from the budget; false (and takes none) past it.
    fn spend(&mut self, n: usize) -> bool {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.exceeded = true;
                false
            }
        }
    }

    fn plan(&mut self, term: Term<'_>) -> Plan {
        let dicts = self.dicts;
        match term.kind() {
            TermKind::And(all) => Plan::And(all.iter().map(|t| self.plan(t)).collect()),
            TermKind::Or(any) => Plan::Or(any.iter().map(|t| self.plan(t)).collect()),
            TermKind::Not(t) => Plan::Not(Box::new(self.plan(t))),
            TermKind::Present(key) => match column_of(key) {
                Some(c) if self.spend(dicts.get(c).map_or(0, Dict::len)) => {
                    let attribute = is_attribute(c);
                    truth_table(dicts.get(c), |v| !attribute || !v.is_empty()).with_column(c)
                }
                Some(_) => Plan::Unknown,
                None => Plan::Tokens(vec![hash_parts(&[b"?", key])]),
            },
            TermKind::Compare(cmp) => match column_of(cmp.key()) {
                Some(c) => {
                    let dict = dicts.get(c);
                    if let (Some(exact), Some(d)) = (cmp.exact_value(), dict)
                        && !is_attribute(c)
                    {
                        let mut truth = vec![false; d.len() + 1];
                        if let Some(id) = d.id(exact)
                            && let Some(t) = truth.get_mut(id as usize)
                        {
                            *t = true;
                        }
                        return Plan::Column {
                            column: c,
                            truth: IdSet::new(truth),
                        };
                    }
                    if !self.spend(dict.map_or(0, Dict::len)) {
                        return Plan::Unknown;
                    }
                    let by_type = COLUMNS.get(c).is_some_and(|s| s.source == Source::Dyno);
                    if is_attribute(c) {
                        truth_table(dict, |v| cmp.holds_for_attribute(v, by_type))
                    } else {
                        truth_table(dict, |v| cmp.holds_for_value(v))
                    }
                    .with_column(c)
                }
                None => match cmp.exact_value() {
                    // Written as it is, the value's words are in the filter; written with an
                    // escape, the pair is.
                    Some(v) => Plan::TokensAny(vec![
                        words(v).map(hash_word).collect(),
                        vec![hash_pair(cmp.key(), v)],
                    ]),
                    None => Plan::Tokens(vec![hash_parts(&[b"?", cmp.key()])]),
                },
            },
            TermKind::Text(phrase) => self.text(phrase),
        }
    }

    /// A full-text phrase: found in the dictionaries whose word filters may hold all of its
    /// words, and through the chunks' filters for the rest of the message.
    fn text(&mut self, phrase: &[u8]) -> Plan {
        let dicts = self.dicts;
        let mut distinct: Vec<&[u8]> = words(phrase).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Plan::Unknown;
        }
        let candidates = |text: &[u8]| -> Vec<usize> {
            (0..COLUMNS.len())
                .filter(|&c| !is_attribute(c))
                .filter(|&c| {
                    dicts
                        .get(c)
                        .is_some_and(|d| words(text).all(|w| d.may_hold_word(w)))
                })
                .collect()
        };
        let values = |columns: Vec<usize>| -> usize {
            columns
                .iter()
                .map(|&c| dicts.get(c).map_or(0, Dict::len))
                .sum()
        };
        let one_word = matches!(distinct.as_slice(), [w] if *w == phrase);
        let mut cost = values(candidates(phrase));
        if !one_word {
            for w in &distinct {
                cost = cost.saturating_add(values(candidates(w)));
            }
        }
        if !self.spend(cost) {
            return Plan::Unknown;
        }
        let in_values = |text: &[u8]| -> Vec<Truth> {
            candidates(text)
                .into_iter()
                .filter_map(|c| {
                    let d = dicts.get(c)?;
                    let truth = IdSet::new(
                        std::iter::once(false)
                            .chain(d.values().map(|v| logfmt::contains_text(v, text)))
                            .collect(),
                    );
                    (!truth.is_empty()).then_some((c, truth))
                })
                .collect()
        };
        let whole = in_values(phrase);
        let words = if one_word {
            // One word: where it is whole is where it is.
            distinct
                .iter()
                .map(|w| (hash_word(w), whole.clone()))
                .collect()
        } else {
            distinct
                .iter()
                .map(|w| (hash_word(w), in_values(w)))
                .collect()
        };
        Plan::Text { whole, words }
    }
}

/// The truth of `holds` for each value of `dict` (absent: false).
fn truth_table(dict: Option<&Dict>, holds: impl Fn(&[u8]) -> bool) -> Plan {
    let table = std::iter::once(false)
        .chain(dict.into_iter().flat_map(|d| d.values().map(&holds)))
        .collect();
    Plan::Column {
        column: usize::MAX,
        truth: IdSet::new(table),
    }
}

impl Plan {
    fn with_column(self, column: usize) -> Plan {
        match self {
            Plan::Column { truth, .. } => Plan::Column { column, truth },
            other => other,
        }
    }
}

/// What a block's columns and filters are read for, once per block.
pub(crate) struct BlockReader<'a> {
    pub(crate) block: &'a BlockFile,
    cache: &'a ColumnCache,
}

impl<'a> BlockReader<'a> {
    pub(crate) fn new(block: &'a BlockFile, cache: &'a ColumnCache) -> Self {
        BlockReader { block, cache }
    }

    /// Column `c`'s ids.
    pub(crate) fn column(&mut self, c: usize) -> Result<Arc<Ids>, IndexError> {
        let block = self.block;
        self.cache.ids(block.id(), c, || block.column(c))
    }

    /// The rows' times.
    pub(crate) fn times(&mut self) -> Result<Arc<Times>, IndexError> {
        let block = self.block;
        self.cache.times(block.id(), || block.times())
    }

    fn filter(&mut self, k: usize) -> Result<Arc<Bloom>, IndexError> {
        let block = self.block;
        self.cache.filter(block.id(), k, || block.filter(k))
    }

    /// The rows `plan` selects: those it surely does, and those it may (for the lines to
    /// decide); the two never overlap.
    pub(crate) fn eval(&mut self, plan: &Plan) -> Result<Rows, IndexError> {
        let rows = self.block.header().rows as usize;
        Ok(match plan {
            Plan::All => Rows::sure(Bitmap::all(rows)),
            Plan::Unknown => Rows::maybe(Bitmap::all(rows)),
            Plan::And(all) => {
                let mut yes = Bitmap::all(rows);
                let mut any = Bitmap::all(rows);
                // Terms on columns first; once the rows left are few, a term on a column is
                // tested on them only, not on every row.
                let mut order: Vec<&Plan> = all.iter().collect();
                order.sort_by_key(|p| !matches!(p, Plan::Column { .. }));
                for (i, p) in order.into_iter().enumerate() {
                    let few = i > 0 && any.count() < rows / 16;
                    match p {
                        Plan::Column { column, truth } if few && self.usable(*column) => {
                            let ids = self.column(*column)?;
                            ids.retain(&mut any, &truth.table);
                            ids.retain(&mut yes, &truth.table);
                        }
                        _ => {
                            let r = self.eval(p)?;
                            yes.and(&r.yes);
                            any.and(&r.either());
                        }
                    }
                    if any.is_empty() {
                        break;
                    }
                }
                Rows::new(yes, any)
            }
            Plan::Or(some) => {
                let mut yes = Bitmap::none(rows);
                let mut any = Bitmap::none(rows);
                for p in some {
                    let r = self.eval(p)?;
                    yes.or(&r.yes);
                    any.or(&r.either());
                }
                Rows::new(yes, any)
            }
            Plan::Not(p) => {
                let r = self.eval(p)?;
                let mut yes = r.either();
                yes.not();
                Rows {
                    yes,
                    maybe: r.maybe,
                }
            }
            Plan::Column { column, truth } => {
                if !self.usable(*column) {
                    return Ok(Rows::maybe(Bitmap::all(rows)));
                }
                Rows::sure(self.in_column(*column, truth)?)
            }
            Plan::Tokens(hashes) => Rows::maybe(self.chunks_with(hashes)?),
            Plan::TokensAny(lists) => {
                let mut any = Bitmap::none(rows);
                for hashes in lists {
                    any.or(&self.chunks_with(hashes)?);
                }
                Rows::maybe(any)
            }
            Plan::Text { whole, words } => {
                let mut yes = Bitmap::none(rows);
                for (c, truth) in whole {
                    yes.or(&self.in_column(*c, truth)?);
                }
                let mut any = Bitmap::all(rows);
                for (hash, columns) in words {
                    let mut here = self.chunks_with(&[*hash])?;
                    for (c, truth) in columns {
                        here.or(&self.in_column(*c, truth)?);
                    }
                    any.and(&here);
                }
                any.or(&yes);
                Rows::new(yes, any)
            }
        })
    }

    /// Whether column `c` answers a comparison in this block: no row has its key twice, and
    /// every value got an id.
    fn usable(&self, c: usize) -> bool {
        self.block
            .header()
            .columns
            .get(c)
            .is_some_and(|h| !h.repeated && !h.overflow)
    }

    /// The rows whose id in column `c` has `truth` (ids are only given to values whose raw
    /// bytes are the value, so this holds even where the column overflowed).
    fn in_column(&mut self, c: usize, truth: &IdSet) -> Result<Bitmap, IndexError> {
        let ids = self.column(c)?;
        Ok(match truth.one {
            Some(id) => ids.select_one(id),
            None => ids.select(&truth.table),
        })
    }

    /// The rows of the chunks whose filter may hold every one of `hashes`.
    fn chunks_with(&mut self, hashes: &[u64]) -> Result<Bitmap, IndexError> {
        let rows = self.block.header().rows as usize;
        let mut out = Bitmap::all(rows);
        let n = self.block.header().chunk_rows as usize;
        for k in 0..self.block.header().chunks.len() {
            let filter = self.filter(k)?;
            if !hashes.iter().all(|&h| filter.may_contain(h)) {
                out.clear_range(k * n, (k + 1) * n);
            }
        }
        Ok(out)
    }
}

/// Rows a filter selects: `yes` surely, `maybe` perhaps (disjoint).
#[derive(Debug)]
pub(crate) struct Rows {
    pub(crate) yes: Bitmap,
    pub(crate) maybe: Bitmap,
}

impl Rows {
    fn sure(yes: Bitmap) -> Rows {
        let maybe = Bitmap::none(yes.len());
        Rows { yes, maybe }
    }

    fn maybe(maybe: Bitmap) -> Rows {
        let yes = Bitmap::none(maybe.len());
        Rows { yes, maybe }
    }

    /// From the rows surely in and those perhaps in (a superset of `yes`).
    fn new(yes: Bitmap, mut any: Bitmap) -> Rows {
        let mut not_yes = yes.clone();
        not_yes.not();
        any.and(&not_yes);
        Rows { yes, maybe: any }
    }

    fn either(&self) -> Bitmap {
        let mut b = self.yes.clone();
        b.or(&self.maybe);
        b
    }
}
