//! The event store: the [`EventStore`] port, its adapters ([`dynamo::DynamoStore`] on
//! DynamoDB, [`memory::MemoryStore`] in memory) and the table [`layout`] every reader and
//! writer of the event table goes through, and [`read_models`] the read models' queries and rebuilds.

pub mod dynamo;
pub mod indexes;
pub mod layout;
pub mod memory;
pub mod read_models;

use std::future::Future;

use chrono::{DateTime, Utc};
use lending_events::envelope::StreamId;
use lending_events::projections::LoanSummary;
use lending_events::{EventEnvelope, NewEvent};

use crate::error::AdapterError;

pub use dynamo::DynamoStore;

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Newly stored, in request order.
    Stored(Vec<EventEnvelope>),
    /// Every event was stored before with the same content: the original envelopes.
    AlreadyStored(Vec<EventEnvelope>),
}

impl Appended {
    pub fn events(&self) -> &[EventEnvelope] {
        match self {
            Appended::Stored(e) | Appended::AlreadyStored(e) => e,
        }
    }
}

/// A page of one aggregate's history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub events: Vec<EventEnvelope>,
    /// The `after` value for the next page, when there may be more.
    pub next: Option<u64>,
}

/// The end of a read without an upper bound: beyond any sequence a stream reaches, and still
/// a valid signed 64-bit number for every store.
const OPEN_END: u64 = i64::MAX as u64;

/// The bounds of one page read: `upto` defaulted (open end), `limit` clamped to 1..=1000;
/// `None` when the window `after < sequence <= upto` is empty.
pub fn page_window(after: u64, upto: Option<u64>, limit: usize) -> Option<(u64, usize)> {
    let upto = upto.unwrap_or(OPEN_END);
    (upto > after).then(|| (upto, limit.clamp(1, 1000)))
}

/// The event store port.
pub trait EventStore: Send + Sync {
    /// Append new events (all or nothing), assigning per-aggregate sequences.
    fn append(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Appended, AdapterError>> + Send;

    /// Events of a stream with `after < sequence <= upto`, at most `limit`, in order.
    fn read_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
        upto: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, AdapterError>> + Send;

    /// Write a loan's summary unless the stored one was folded at the same or a later
    /// sequence (so a rebuild never overwrites a newer live update, nor the reverse).
    /// `true` when written.
    fn put_loan_summary(
        &self,
        summary: &LoanSummary,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;

    /// The history up to and including `upto`.
    fn history_until(
        &self,
        stream: StreamId<'_>,
        upto: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, AdapterError>> + Send {
        read_all(self, stream, Some(upto))
    }

    /// The whole history of a stream, in order.
    fn history(
        &self,
        stream: StreamId<'_>,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, AdapterError>> + Send {
        read_all(self, stream, None)
    }
}

/// Every page of a stream up to `upto` (open end when `None`).
async fn read_all<S: EventStore + ?Sized>(
    store: &S,
    stream: StreamId<'_>,
    upto: Option<u64>,
) -> Result<Vec<EventEnvelope>, AdapterError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_stream(stream, after, upto, 1000).await?;
        out.extend(page.events);
        match page.next {
            Some(n) => after = n,
            None => return Ok(out),
        }
    }
}
