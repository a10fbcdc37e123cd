//! A compiled subscription filter matches an event without allocating: dispatch checks
//! every stored event against every subscription of its tenant. Counted with a global
//! allocator that tallies this thread's allocations (this file is its own test binary).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lending_events::subscription::Filter;
use lending_events::EventEnvelope;
use serde_json::json;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn matching_allocates_nothing() {
    let event: EventEnvelope = serde_json::from_value(json!({
        "eventId": "7f1c9d2e-4b5a-4c3d-9e8f-0a1b2c3d4e5f",
        "eventType": "Payment.Received",
        "eventVersion": 2,
        "domain": "payment",
        "aggregateType": "Loan",
        "aggregateId": "L-1",
        "sequence": 3,
        "occurredAt": "2026-03-01T10:00:00Z",
        "recordedAt": "2026-03-01T10:00:00.123Z",
        "payload": {"loanId": "L-1", "amount": "1250.00", "method": "ACH", "termMonths": 36,
                    "borrower": {"state": "NY"}, "tags": ["a", "b"]},
        "metadata": {"correlationId": "c-1", "tenantId": "t1", "source": "servicer-a"}
    }))
    .unwrap();
    let filters: Vec<Filter> = [
        json!({}),
        json!({"eventTypes": ["Loan.Funded", "Payment.*"], "domains": ["payment"], "aggregateTypes": ["Loan"]}),
        json!({"payload": {"amount": [{"numeric": [">", 0, "<=", "5000.00"]}], "method": ["ACH", "WIRE"]}}),
        json!({"payload": {"termMonths": {"numeric": [">=", 12]}, "borrower": {"state": [{"prefix": "N"}]}}}),
        json!({"payload": {"method": {"anything-but": ["CHECK"]}, "fundId": {"exists": false}, "tags": ["b"]}}),
        json!({"metadata": {"source": [{"prefix": "servicer-"}], "causationId": {"exists": false}, "tenantId": {"anything-but": {"prefix": "x"}}}}),
        json!({"eventTypes": ["Draw.*"]}),
    ]
    .iter()
    .map(|raw| Filter::parse(raw).unwrap())
    .collect();
    // The counter counts: a String allocates.
    assert!(allocations_during(|| drop(std::hint::black_box(String::from("x")))) > 0);
    let mut matched = 0;
    let allocations = allocations_during(|| {
        for _ in 0..100 {
            for f in &filters {
                matched += usize::from(f.matches(&event));
            }
        }
    });
    // Every filter but the Draw one matches: the conditions were really evaluated.
    assert_eq!(matched, 100 * (filters.len() - 1));
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations in {} matches",
        100 * filters.len()
    );
}
