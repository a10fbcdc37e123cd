//! Reads and rebuilds of the read models ([`lending_events::projections`]): loan summaries
//! by one of the loan indexes (never a scan) and a fund's portfolio. Re-deriving every
//! summary of a tenant from the event store is a job ([`crate::operator::rebuild`]).
//!
//! Each list query picks the one index that serves its most selective filter (borrower,
//! then fund, then delinquency, then status, else the tenant's index); further filters are
//! checked on the summaries read. The indexes hold keys only: each page of entries is
//! followed by one BatchGetItem for the summaries.

use lending_events::projections::{portfolio, FundPortfolio, LoanSummary};

use super::layout::{
    attr, batch_get_keys, decode_loan_summary, index, index_keys, loan_index_key, s, Item, Read,
};
use crate::error::{classify, AdapterError};

/// The filters of `GET /loans` (already validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoanFilter {
    pub status: Option<String>,
    pub borrower_id: Option<String>,
    pub fund_id: Option<String>,
    pub delinquent: bool,
}

impl LoanFilter {
    /// The index that serves this filter: (index name, its partition key attribute, the key).
    pub fn index(&self, tenant: &str) -> (&'static str, &'static str, String) {
        if let Some(b) = &self.borrower_id {
            (
                index::LOANS_BY_BORROWER,
                attr::LOANS_BORROWER_KEY,
                loan_index_key(tenant, Some(b)),
            )
        } else if let Some(f) = &self.fund_id {
            (
                index::LOANS_BY_FUND,
                attr::LOANS_FUND_KEY,
                loan_index_key(tenant, Some(f)),
            )
        } else if self.delinquent {
            (
                index::LOANS_DELINQUENT,
                attr::LOANS_DELINQUENT_KEY,
                loan_index_key(tenant, None),
            )
        } else if let Some(st) = &self.status {
            (
                index::LOANS_BY_STATUS,
                attr::LOANS_STATUS_KEY,
                loan_index_key(tenant, Some(st)),
            )
        } else {
            (
                index::LOANS_BY_TENANT,
                attr::LOANS_TENANT_KEY,
                loan_index_key(tenant, None),
            )
        }
    }

    /// Whether a summary passes every filter (the index already holds one of them).
    pub fn matches(&self, l: &LoanSummary) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| l.status.as_str() == s)
            && self
                .borrower_id
                .as_deref()
                .is_none_or(|b| l.borrower_id.as_deref() == Some(b))
            && self
                .fund_id
                .as_deref()
                .is_none_or(|f| l.fund_id.as_deref() == Some(f))
            && (!self.delinquent || l.delinquent)
    }
}

/// A page of loan summaries in loanId order.
#[derive(Debug, Clone, Default)]
pub struct LoanPage {
    pub loans: Vec<LoanSummary>,
    /// Where the next page starts, when there may be more.
    pub last_key: Option<Item>,
}

/// One page of a tenant's loans through the index that serves `filter`.
pub async fn list_loans(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    filter: &LoanFilter,
    limit: usize,
    start: Option<Item>,
) -> Result<LoanPage, AdapterError> {
    let (index_name, key_attr, key) = filter.index(tenant);
    let mut page = LoanPage::default();
    let mut start = start;
    // A Limit counts entries read, so keep going until the page is full or the index ends.
    loop {
        let out = ddb
            .query()
            .table_name(table)
            .index_name(index_name)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key_attr)
            .expression_attribute_values(":k", s(&key))
            .limit((limit - page.loans.len()) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query(loans)", e))?;
        for item in batch_get_keys(ddb, table, index_keys(out.items()), Read::Eventual).await? {
            let summary = decode_loan_summary(&item)?;
            // An entry read between a summary's move and its index's catch-up is checked
            // against the summary itself.
            if summary.tenant_id == tenant && filter.matches(&summary) {
                page.loans.push(summary);
            }
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() || page.loans.len() >= limit {
            page.last_key = start;
            return Ok(page);
        }
    }
}

/// The portfolio of one fund from every loan of the `loansByFund` index.
pub async fn fund_portfolio(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    fund_id: &str,
) -> Result<FundPortfolio, AdapterError> {
    let filter = LoanFilter {
        fund_id: Some(fund_id.to_string()),
        ..LoanFilter::default()
    };
    let mut loans = Vec::new();
    let mut start = None;
    loop {
        let page = list_loans(ddb, table, tenant, &filter, 1000, start).await?;
        loans.extend(page.loans);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(portfolio(fund_id, &loans)),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Loans whose history was folded.
    pub loans: u64,
    /// Summaries written (the others were as new or newer already).
    pub written: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_selective_filter_picks_the_index() {
        let f = |status: Option<&str>, b: Option<&str>, fund: Option<&str>, d: bool| LoanFilter {
            status: status.map(str::to_string),
            borrower_id: b.map(str::to_string),
            fund_id: fund.map(str::to_string),
            delinquent: d,
        };
        assert_eq!(
            f(None, None, None, false).index("t").0,
            index::LOANS_BY_TENANT
        );
        assert_eq!(
            f(Some("funded"), None, None, false).index("t").0,
            index::LOANS_BY_STATUS
        );
        assert_eq!(
            f(Some("funded"), None, None, true).index("t").0,
            index::LOANS_DELINQUENT
        );
        assert_eq!(
            f(Some("funded"), None, Some("F"), true).index("t"),
            (
                index::LOANS_BY_FUND,
                attr::LOANS_FUND_KEY,
                "t#F".to_string()
            )
        );
        assert_eq!(
            f(None, Some("B"), Some("F"), false).index("t").0,
            index::LOANS_BY_BORROWER
        );
    }
}
