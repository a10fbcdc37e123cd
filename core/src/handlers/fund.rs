//! The fund domain: a funded loan draws capital from its fund.

use serde_json::json;

use super::{loan_before, DomainHandler, HandlerInput};
use crate::domain::Domain;
use crate::envelope::FollowOn;
use crate::error::CoreError;

/// `Loan.Funded` -> `Fund.CapitalAllocated` on the loan's fund (`fundId` of
/// `Loan.Created`). A loan without a fund is held on balance sheet: nothing to allocate.
pub struct FundHandler;

impl DomainHandler for FundHandler {
    fn name(&self) -> &'static str {
        "fund-allocation"
    }

    fn domain(&self) -> Domain {
        Domain::Fund
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &["Loan.Funded"]
    }

    fn handle(&self, input: &HandlerInput<'_>) -> Result<Vec<FollowOn>, CoreError> {
        let e = input.event;
        let loan = loan_before(input);
        let Some(fund) = loan.terms.as_ref().and_then(|t| t.fund_id.clone()) else {
            return Ok(Vec::new());
        };
        Ok(vec![FollowOn {
            event_type: "Fund.CapitalAllocated",
            aggregate_type: "Fund",
            aggregate_id: fund.clone(),
            payload: json!({
                "fundId": fund,
                "loanId": e.aggregate_id,
                "amount": e.payload["fundedAmount"],
                "allocatedAt": e.payload["fundedAt"],
            })
            .into(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::handlers::testkit::given;

    fn created(fund: Option<&str>) -> Value {
        let mut created = json!({"eventType": "Loan.Created", "aggregateType": "Loan",
            "aggregateId": "L1",
            "payload": {"loanId": "L1", "borrowerId": "B1", "amount": "1000", "interestRate": "5",
                "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly"}});
        if let Some(f) = fund {
            created["payload"]["fundId"] = json!(f);
        }
        created
    }

    fn funded() -> Value {
        json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": "L1",
            "payload": {"loanId": "L1", "fundedAmount": "1000", "fundedAt": "2026-01-10T00:00:00Z"}})
    }

    #[test]
    fn capital_is_allocated_from_the_loans_fund() {
        given([created(Some("F1"))])
            .when(&FundHandler, funded())
            .then([json!({"eventType": "Fund.CapitalAllocated", "aggregateType": "Fund",
                "aggregateId": "F1", "payload": {"fundId": "F1", "loanId": "L1", "amount": "1000.00"}})]);
        // Held on balance sheet: nothing to allocate.
        given([created(None)])
            .when(&FundHandler, funded())
            .then_nothing();
    }
}
