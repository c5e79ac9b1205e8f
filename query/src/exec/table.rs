//! `Table`: the rows an aggregation gives, and the stages that reorder and cut them.

use std::cmp::Ordering;

use logplex::Timestamp;

use crate::lang::TableStage;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A timechart bucket's start.
    Time,
    /// A group key, as text.
    Key,
    /// An aggregate, a number.
    Value,
}

/// A column: its name as written in the query, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// `path`, `count`, `p99(service)`, `time`.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A group key (UTF-8, lossy).
    Text(String),
    /// An aggregate: durations in ms, sizes in bytes.
    Number(f64),
    /// A timechart bucket's start.
    Time(Timestamp),
    /// No value: an average of no numbers.
    Empty,
}

/// An aggregation's answer: columns and rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, each a cell a column.
    pub rows: Vec<Vec<Cell>>,
    /// A timechart's bucket width, in microseconds.
    pub span_micros: Option<i64>,
}

/// How two cells order: numbers and times by value, text by bytes; empty cells last.
pub(crate) fn compare(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Number(x), Cell::Number(y)) => x.total_cmp(y),
        (Cell::Text(x), Cell::Text(y)) => x.cmp(y),
        (Cell::Time(x), Cell::Time(y)) => x.cmp(y),
        (Cell::Empty, Cell::Empty) => Ordering::Equal,
        (Cell::Empty, _) => Ordering::Greater,
        (_, Cell::Empty) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

impl Table {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Applies `sort`, `head` and `fields` in order.
    pub(crate) fn apply(&mut self, stages: &[TableStage]) {
        for stage in stages {
            match stage {
                TableStage::Sort { column, descending } => self.sort(column, *descending),
                TableStage::Head(n) => self.rows.truncate(*n),
                TableStage::Fields(keep) => self.keep(keep),
            }
        }
    }

    /// Sorts rows by a column (stable: ties keep their order); empty cells last either way.
    fn sort(&mut self, column: &str, descending: bool) {
        let Some(i) = self.column(column) else { return };
        self.rows.sort_by(|a, b| {
            let (x, y) = (
                a.get(i).unwrap_or(&Cell::Empty),
                b.get(i).unwrap_or(&Cell::Empty),
            );
            match (x, y, descending) {
                (Cell::Empty, _, _) | (_, Cell::Empty, _) | (_, _, false) => compare(x, y),
                (_, _, true) => compare(y, x),
            }
        });
    }

    /// Keeps only the columns named, in that order.
    fn keep(&mut self, names: &[String]) {
        let picks: Vec<usize> = names.iter().filter_map(|n| self.column(n)).collect();
        self.columns = picks
            .iter()
            .filter_map(|&i| self.columns.get(i).cloned())
            .collect();
        for row in &mut self.rows {
            *row = picks
                .iter()
                .map(|&i| row.get(i).cloned().unwrap_or(Cell::Empty))
                .collect();
        }
        if !self.columns.iter().any(|c| c.kind == ColumnKind::Time) {
            self.span_micros = None;
        }
    }
}
