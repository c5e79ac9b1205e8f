//! A query's filter over a block: each term on a column is answered from the column (every
//! distinct value tested once, with the predicate's own semantics, then ids compared); a
//! full-text word, a `key=value` on another key or a bare key rules out chunks by their token
//! filters; anything else leaves the rows as candidates, which the lines then decide.

use logfmt::{Predicate, Term, TermKind};

use super::IndexError;
use super::bitmap::Bitmap;
use super::block::BlockFile;
use super::bloom::{Bloom, hash_pair, hash_parts, hash_word, words};
use super::columns::{COLUMNS, Source, column_of, is_attribute};
use super::dict::Dict;

/// A filter, prepared for the app's dictionaries.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Every row.
    All,
    And(Vec<Plan>),
    Or(Vec<Plan>),
    Not(Box<Plan>),
    /// A term on a column: whether it holds for each id (index 0: the key is absent).
    Column {
        column: usize,
        truth: Vec<bool>,
    },
    /// Rows in chunks whose filter may hold every one of these hashes (a superset).
    Tokens(Vec<u64>),
    /// Rows the index cannot tell (a superset: every row).
    Unknown,
}

impl Plan {
    /// The plan of `filter` (`None`: every row).
    pub(crate) fn new(filter: Option<&Predicate>, dicts: &[Dict]) -> Plan {
        filter.map_or(Plan::All, |p| plan(p.root(), dicts))
    }
}

fn plan(term: Term<'_>, dicts: &[Dict]) -> Plan {
    match term.kind() {
        TermKind::And(all) => Plan::And(all.iter().map(|t| plan(t, dicts)).collect()),
        TermKind::Or(any) => Plan::Or(any.iter().map(|t| plan(t, dicts)).collect()),
        TermKind::Not(t) => Plan::Not(Box::new(plan(t, dicts))),
        TermKind::Present(key) => match column_of(key) {
            Some(c) => {
                let attribute = is_attribute(c);
                truth_table(dicts.get(c), |v| !attribute || !v.is_empty())
            }
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
                    return Plan::Column { column: c, truth };
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
                Some(v) => Plan::Tokens(vec![hash_pair(cmp.key(), v)]),
                None => Plan::Tokens(vec![hash_parts(&[b"?", cmp.key()])]),
            },
        },
        TermKind::Text(phrase) => {
            let hashes: Vec<u64> = words(phrase).map(hash_word).collect();
            if hashes.is_empty() {
                Plan::Unknown
            } else {
                Plan::Tokens(hashes)
            }
        }
    }
}

/// The truth of `holds` for each value of `dict` (absent: false).
fn truth_table(dict: Option<&Dict>, holds: impl Fn(&[u8]) -> bool) -> Plan {
    let truth = std::iter::once(false)
        .chain(dict.into_iter().flat_map(|d| d.values().map(&holds)))
        .collect();
    Plan::Column {
        column: usize::MAX,
        truth,
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
    columns: Vec<Option<Vec<u32>>>,
    filters: Vec<Option<Bloom>>,
}

impl<'a> BlockReader<'a> {
    pub(crate) fn new(block: &'a BlockFile) -> Self {
        BlockReader {
            block,
            columns: vec![None; COLUMNS.len()],
            filters: vec![None; block.header().chunks.len()],
        }
    }

    /// Column `c`'s ids (read once).
    pub(crate) fn column(&mut self, c: usize) -> Result<&[u32], IndexError> {
        let slot = self
            .columns
            .get_mut(c)
            .ok_or_else(|| IndexError::corrupt(self.block.path(), format!("no column {c}")))?;
        if slot.is_none() {
            *slot = Some(self.block.column(c)?);
        }
        Ok(slot.as_deref().unwrap_or_default())
    }

    fn filter(&mut self, k: usize) -> Result<&Bloom, IndexError> {
        let block = self.block;
        let slot = self
            .filters
            .get_mut(k)
            .ok_or_else(|| IndexError::corrupt(block.path(), format!("no chunk {k}")))?;
        if slot.is_none() {
            *slot = Some(block.filter(k)?);
        }
        slot.as_ref()
            .ok_or_else(|| IndexError::corrupt(block.path(), "token filter"))
    }

    /// The rows `plan` selects, and whether exactly (else a superset the lines decide).
    pub(crate) fn eval(&mut self, plan: &Plan) -> Result<(Bitmap, bool), IndexError> {
        let rows = self.block.header().rows as usize;
        Ok(match plan {
            Plan::All => (Bitmap::all(rows), true),
            Plan::Unknown => (Bitmap::all(rows), false),
            Plan::And(all) => {
                let mut out = Bitmap::all(rows);
                let mut exact = true;
                for p in all {
                    let (b, e) = self.eval(p)?;
                    out.and(&b);
                    exact &= e;
                    if out.is_empty() {
                        return Ok((out, true));
                    }
                }
                (out, exact)
            }
            Plan::Or(any) => {
                let mut out = Bitmap::none(rows);
                let mut exact = true;
                for p in any {
                    let (b, e) = self.eval(p)?;
                    out.or(&b);
                    exact &= e;
                }
                (out, exact)
            }
            Plan::Not(p) => match self.eval(p)? {
                (mut b, true) => {
                    b.not();
                    (b, true)
                }
                (_, false) => (Bitmap::all(rows), false),
            },
            Plan::Column { column, truth } => {
                let header = self.block.header().columns.get(*column);
                if header.is_none_or(|h| h.repeated || h.overflow) {
                    return Ok((Bitmap::all(rows), false));
                }
                let ids = self.column(*column)?;
                let b = Bitmap::from_fn(rows, |i| {
                    ids.get(i)
                        .and_then(|&id| truth.get(id as usize))
                        .copied()
                        .unwrap_or(false)
                });
                (b, true)
            }
            Plan::Tokens(hashes) => {
                let mut out = Bitmap::all(rows);
                let n = self.block.header().chunk_rows as usize;
                for k in 0..self.block.header().chunks.len() {
                    let filter = self.filter(k)?;
                    if !hashes.iter().all(|&h| filter.may_contain(h)) {
                        out.clear_range(k * n, (k + 1) * n);
                    }
                }
                let exact = out.is_empty();
                (out, exact)
            }
        })
    }
}
