//! Read and write capacity units as DynamoDB reports them, for measurements: counting
//! clients ([`super::Clients::counting_as`]) ask every call for its consumed capacity
//! (`ReturnConsumedCapacity = TOTAL`) and add what the answer reports, per label. The
//! emulator's figures are DynamoDB's own rules applied by it (4 KB per read unit, 1 KB per
//! write unit, twice that in a transaction, index writes included), not this crate's model.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item, batch_write_item, delete_item, get_item, put_item, query, scan,
    transact_get_items, transact_write_items, update_item,
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

/// Capacity units consumed, as reported.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub read_units: f64,
    pub write_units: f64,
}

/// What the counting clients built with this label consumed since the start or the last
/// [`reset_capacity`], by operation (`DynamoDB.Query`, named as the call counts name them).
pub fn capacity_for(label: &str) -> BTreeMap<String, Capacity> {
    table()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|((l, _), _)| *l == label)
        .map(|((_, op), c)| (format!("DynamoDB.{op}"), *c))
        .collect()
}

pub fn reset_capacity() {
    table().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

type Table = BTreeMap<(&'static str, &'static str), Capacity>;

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The interceptor: asks for the capacity before a call is serialised, adds it up after.
#[derive(Debug)]
pub struct CapacityMeter {
    label: &'static str,
}

impl CapacityMeter {
    pub fn labelled(label: &'static str) -> CapacityMeter {
        CapacityMeter { label }
    }

    fn add(&self, operation: &'static str, units: f64, write: bool) {
        let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
        let c = t.entry((self.label, operation)).or_default();
        if write {
            c.write_units += units;
        } else {
            c.read_units += units;
        }
    }
}

fn units<'a>(reported: impl IntoIterator<Item = &'a ConsumedCapacity>) -> f64 {
    reported
        .into_iter()
        .map(|c| c.capacity_units().unwrap_or(0.0))
        .sum()
}

/// Every operation that reports capacity: module, name, input, output, whether it writes.
macro_rules! each_operation {
    ($apply:ident) => {
        $apply!(get_item, "GetItem", GetItemInput, GetItemOutput, false);
        $apply!(query, "Query", QueryInput, QueryOutput, false);
        $apply!(scan, "Scan", ScanInput, ScanOutput, false);
        $apply!(
            batch_get_item,
            "BatchGetItem",
            BatchGetItemInput,
            BatchGetItemOutput,
            false
        );
        $apply!(
            transact_get_items,
            "TransactGetItems",
            TransactGetItemsInput,
            TransactGetItemsOutput,
            false
        );
        $apply!(put_item, "PutItem", PutItemInput, PutItemOutput, true);
        $apply!(
            update_item,
            "UpdateItem",
            UpdateItemInput,
            UpdateItemOutput,
            true
        );
        $apply!(
            delete_item,
            "DeleteItem",
            DeleteItemInput,
            DeleteItemOutput,
            true
        );
        $apply!(
            batch_write_item,
            "BatchWriteItem",
            BatchWriteItemInput,
            BatchWriteItemOutput,
            true
        );
        $apply!(
            transact_write_items,
            "TransactWriteItems",
            TransactWriteItemsInput,
            TransactWriteItemsOutput,
            true
        );
    };
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        macro_rules! ask {
            ($op:ident, $name:literal, $input:ident, $output:ident, $write:expr) => {
                if let Some(i) = input.downcast_mut::<$op::$input>() {
                    i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
                    return Ok(());
                }
            };
        }
        each_operation!(ask);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        macro_rules! add {
            ($op:ident, $name:literal, $input:ident, $output:ident, $write:expr) => {
                if let Some(o) = output.downcast_ref::<$op::$output>() {
                    self.add($name, units(o.consumed_capacity()), $write);
                    return Ok(());
                }
            };
        }
        each_operation!(add);
        Ok(())
    }
}
