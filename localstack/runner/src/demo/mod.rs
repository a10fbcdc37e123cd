//! The main job: play the LendingOS story through the HTTP API, as a client would, and show
//! what the backbone did with it.

use std::time::{Duration, Instant};

use lending_events::Domain;
use serde_json::{json, Value};

pub use client::DemoClient;

mod client;
mod webhook;

/// Every event of one correlation (the table's byCorrelation index), until `n` are there.
async fn by_correlation(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &str,
    corr: &str,
    n: usize,
) -> Result<Vec<Value>, String> {
    let start = Instant::now();
    loop {
        let evs: Vec<Value> = event_adapters::store::indexes::correlation_events(
            ddb,
            table,
            tenant,
            corr,
            usize::MAX,
        )
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
        if evs.len() >= n || start.elapsed() > Duration::from_secs(120) {
            return Ok(evs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

pub async fn play(
    base: &str,
    clients: &event_adapters::config::Clients,
    config: &event_adapters::config::Config,
) -> Result<(), String> {
    let (ddb, table) = (&clients.dynamodb, config.table.as_str());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let short = &run[..8];
    let api = DemoClient::new(base, &format!("demo-{short}"));
    let (borrower, loan, fund) = (
        format!("B-{short}"),
        format!("L-{short}"),
        format!("F-{short}"),
    );
    let correlation = format!("onboarding-{short}");
    let started_at = chrono::Utc::now();
    let meta = json!({"userId": "officer-7", "correlationId": correlation, "source": "demo"});

    println!("\n▶ 1. Borrower onboarding (tenant {})", api.tenant);
    api.publish(json!({"eventType": "Borrower.Created", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "type": "individual", "name": "Ada Lovelace"}, "metadata": meta})).await?;
    api.publish(json!({"eventType": "Borrower.KYCApproved", "aggregateType": "Borrower", "aggregateId": borrower,
        "payload": {"borrowerId": borrower, "verifiedAt": "2026-01-20T10:00:00Z"}, "metadata": meta})).await?;

    println!("\n▶ 2. A construction loan created, approved and funded: $125,000 at 7.5 % over 5 years, $100,000 advanced");
    api.publish(json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": "125000.00", "interestRate": "7.5",
            "termMonths": 60, "amortization": "amortized", "paymentFrequency": "monthly", "fundId": fund,
            "loanType": "construction"},
        "metadata": meta})).await?;
    api.publish(json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "approvedBy": "officer-7", "approvedAt": "2026-01-30T12:00:00Z"}, "metadata": meta})).await?;
    let funded = api.publish(json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "100000.00", "fundedAt": "2026-01-31T09:00:00Z"}, "metadata": meta})).await?;

    println!("\n▶ 3. The backbone reacts: stream → dispatch → payment queue → payment handler");
    let history = api
        .wait_for("Loan", &loan, "PaymentSchedule.Generated")
        .await?;

    println!("\n▶ 4. The loan's history (GET /aggregates/Loan/{loan}/events)");
    println!(
        "  {:>3}  {:<26} {:<10} {:<18} caused by",
        "seq", "event", "event id", "source"
    );
    for e in &history {
        let caused = e["metadata"]["causationId"].as_str().map(|c| {
            if c == funded["eventId"].as_str().unwrap_or("") {
                format!("Loan.Funded {}", &c[..8])
            } else {
                c[..8.min(c.len())].to_string()
            }
        });
        println!(
            "  {:>3}  {:<26} {:<10} {:<18} {}",
            e["sequence"].to_string(),
            e["eventType"].as_str().unwrap_or("?"),
            &e["eventId"].as_str().unwrap_or("?")[..8],
            e["metadata"]["source"].as_str().unwrap_or("-"),
            caused.unwrap_or_else(|| "-".into())
        );
    }
    if let Some(schedule) = history
        .iter()
        .find(|e| e["eventType"] == "PaymentSchedule.Generated")
    {
        println!(
            "\n▶ 5. The payment schedule ({} payments, correlation {})",
            schedule["payload"]["totalPayments"], schedule["metadata"]["correlationId"]
        );
        println!(
            "  {:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}",
            "#", "due", "principal", "interest", "total", "balance"
        );
        for p in schedule["payload"]["payments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let s = |k: &str| p[k].as_str().unwrap_or("?").to_string();
            println!(
                "  {:>3}  {:<10} {:>12} {:>12} {:>12} {:>12}",
                p["number"].to_string(),
                s("dueDate"),
                s("principal"),
                s("interest"),
                s("total"),
                s("balance")
            );
        }
    }

    println!("\n▶ 6. Everything Loan.Funded set off (one correlation, causation = Loan.Funded)");
    let caused = by_correlation(ddb, table, &api.tenant, &correlation_id(&funded), 10).await?;
    for e in caused
        .iter()
        .filter(|e| e["metadata"]["causationId"] == funded["eventId"])
    {
        let p = &e["payload"];
        let what = match e["eventType"].as_str().unwrap_or("") {
            "PaymentSchedule.Generated" => format!("{} payments", p["totalPayments"]),
            "Document.Generated" => s(&p["type"]),
            "Fund.CapitalAllocated" => format!("{} from fund {}", s(&p["amount"]), s(&p["fundId"])),
            "Notification.Sent" => format!(
                "{} to {} by {}",
                s(&p["template"]),
                s(&p["recipient"]),
                s(&p["channel"])
            ),
            _ => String::new(),
        };
        println!(
            "  {:<26} {:<18} {:<24} {}",
            s(&e["eventType"]),
            s(&e["metadata"]["source"]),
            format!(
                "{}#{}",
                s(&e["aggregateType"]),
                short_id(&s(&e["aggregateId"]))
            ),
            what
        );
    }

    println!("\n▶ 7. The borrower pays installment 1 (a v1 event: free-text method \"ACH\")");
    api.publish(
        json!({"eventType": "Payment.Received", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"paymentId": "PAY-1", "loanId": loan, "amount": "8675.74", "method": "ACH",
            "receivedAt": "2026-02-27T15:00:00Z"}, "metadata": meta}),
    )
    .await?;
    let h = api.wait_for("Loan", &loan, "Payment.Applied").await?;
    if let Some(a) = h.iter().rev().find(|e| e["eventType"] == "Payment.Applied") {
        let p = &a["payload"];
        println!(
            "  Payment.Applied: interest {}, principal {}, remaining principal {} (method read as v2: {})",
            s(&p["allocation"]["interest"]),
            s(&p["allocation"]["principal"]),
            s(&p["remainingPrincipal"]),
            s(&p["paymentMethod"])
        );
    }

    println!(
        "\n▶ 8. The daily late-payment job, as of 2026-04-20 (POST /admin/late-payments), twice"
    );
    for run in 1..=2 {
        let (status, report) = api
            .call(
                "POST",
                "/admin/late-payments",
                Some(&json!({"asOf": "2026-04-20"})),
            )
            .await?;
        if status != 200 {
            return Err(format!("late-payment job: {status} {report}"));
        }
        println!(
            "  run {run}: {} funded loan(s), {} Payment.Late, {} fee(s), {} status change(s) emitted, {} already stored",
            report["loans"], report["lateNotices"], report["feesAssessed"], report["statusChanges"],
            report["alreadyStored"]
        );
    }
    let h = api.history("Loan", &loan).await?;
    for e in h.iter().filter(|e| {
        e["eventType"] == "Payment.Late"
            || e["eventType"] == "Payment.LateFeeAssessed"
            || (e["eventType"] == "Loan.StatusChanged"
                && e["metadata"]["source"] == "late-payments")
    }) {
        let p = &e["payload"];
        match e["eventType"].as_str().unwrap_or("") {
            "Payment.Late" => println!(
                "  Payment.Late: installment {} due {}, {} days late (grace 15), {} due",
                p["installment"],
                s(&p["dueDate"]),
                p["daysLate"],
                s(&p["amountDue"])
            ),
            "Payment.LateFeeAssessed" => println!(
                "  Payment.LateFeeAssessed: installment {}, {} (5 % of the installment)",
                p["installment"],
                s(&p["amount"])
            ),
            _ => println!(
                "  Loan.StatusChanged: {} -> {} ({})",
                s(&p["fromStatus"]),
                s(&p["toStatus"]),
                s(&p["reason"])
            ),
        }
    }

    println!("\n▶ 9. A construction draw: request → inspection → approval on the loan → disbursal");
    let draw = format!("D-{short}");
    let requested = api
        .publish(
            json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
        "payload": {"drawId": draw, "loanId": loan, "amount": "25000.00"}, "metadata": meta}),
        )
        .await?;
    let h = api.wait_for("Draw", &draw, "Inspection.Scheduled").await?;
    let scheduled = h
        .iter()
        .find(|e| e["eventType"] == "Inspection.Scheduled")
        .cloned()
        .unwrap_or_default();
    println!(
        "  inspection {} scheduled for {}",
        &s(&scheduled["payload"]["inspectionId"])[..8],
        s(&scheduled["payload"]["scheduledFor"])
    );
    api.publish(json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": draw,
        "payload": {"inspectionId": scheduled["payload"]["inspectionId"], "drawId": draw, "result": "passed",
            "notes": "foundation poured"},
        "metadata": {"userId": "inspector-3", "correlationId": correlation_id(&requested), "source": "demo"}})).await?;
    let h = api.wait_for("Draw", &draw, "Draw.Disbursed").await?;
    draw_moves_the_balance(&api, &loan).await?;
    println!("  {:>3}  {:<22} {:<16} detail", "seq", "event", "source");
    for e in &h {
        let p = &e["payload"];
        let detail = match e["eventType"].as_str().unwrap_or("") {
            "Draw.Requested" => format!("{} requested", s(&p["amount"])),
            "Inspection.Scheduled" => format!("for {}", s(&p["scheduledFor"])),
            "Inspection.Completed" | "Draw.Inspected" => s(&p["result"]),
            "Draw.Approved" => format!("{} approved", s(&p["approvedAmount"])),
            "Draw.Disbursed" => format!("{} disbursed", s(&p["amount"])),
            _ => String::new(),
        };
        println!(
            "  {:>3}  {:<22} {:<16} {}",
            e["sequence"].to_string(),
            s(&e["eventType"]),
            s(&e["metadata"]["source"]),
            detail
        );
    }

    println!(
        "\n▶ 10. The loan's state (GET /aggregates/Loan/{loan}/state), folded from its history"
    );
    let st = api.state("Loan", &loan).await?;
    let next = &st["nextDue"];
    for (k, v) in [
        ("status", s(&st["status"])),
        ("outstanding principal", s(&st["outstandingPrincipal"])),
        (
            "paid principal / interest",
            format!("{} / {}", s(&st["paidPrincipal"]), s(&st["paidInterest"])),
        ),
        (
            "next due",
            format!(
                "#{} on {}: {}",
                next["installment"],
                s(&next["dueDate"]),
                s(&next["amount"])
            ),
        ),
        ("late installments", st["lateInstallments"].to_string()),
        ("draws disbursed", s(&st["disbursedDrawsTotal"])),
        ("available to draw", s(&st["draws"]["availableToDraw"])),
        ("delinquency", s(&st["delinquency"])),
        ("late fees owed", s(&st["feesOwed"])),
    ] {
        println!("  {k:<26} {v}");
    }
    construction_story(&api, short).await?;
    over_payment_is_held_and_refunded(&api, &loan, clients, config).await?;

    println!(
        "\n▶ 11. A poison event: the reversal of a payment never received (refused, not retried)"
    );
    let poison = api
        .publish(json!({"eventType": "Payment.Reversed", "aggregateType": "Loan", "aggregateId": loan,
            "payload": {"paymentId": "PAY-NEVER-RECEIVED", "loanId": loan, "reason": "returned: account closed"},
            "metadata": {"userId": "teller-2", "correlationId": format!("poison-{short}"), "source": "demo"}}))
        .await?;
    let dlq = config
        .dlq_url(Domain::Payment)
        .unwrap_or_default()
        .to_string();
    let started = std::time::Instant::now();
    let letter = loop {
        let letters = event_adapters::operator::dead_letters::list(
            &clients.sqs,
            ddb,
            table,
            Domain::Payment,
            &dlq,
            100,
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(l) = letters
            .into_iter()
            .find(|l| l.event_id.as_deref() == poison["eventId"].as_str())
        {
            break l;
        }
        if started.elapsed() > std::time::Duration::from_secs(90) {
            return Err("the poison reversal never reached the payment DLQ".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };

    println!("\n▶ 12. The correlation trees (GET /correlations/{{id}}: causation links, handler outcomes)");
    let mut trees = vec![
        correlation.clone(),
        correlation_id(&requested),
        format!("poison-{short}"),
    ];
    trees.dedup();
    for corr in trees {
        let (status, tree) = api
            .call("GET", &format!("/correlations/{corr}"), None)
            .await?;
        if status != 200 {
            return Err(format!("trace {corr}: {status} {tree}"));
        }
        println!("  correlation {corr}: {} events", tree["eventCount"]);
        let mut text = String::new();
        evctl::render::trace_tree(
            tree["tree"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "    ",
            true,
            &mut text,
        );
        print!("{text}");
    }

    println!("\n▶ 13. The payment DLQ (evctl dlq list --domain payment)");
    println!(
        "  {} {} {} handler={} receives={}\n    reason: {}",
        short_id(letter.event_id.as_deref().unwrap_or("?")),
        letter.event_type.as_deref().unwrap_or("?"),
        letter.aggregate.as_deref().unwrap_or("?"),
        letter.handler.as_deref().unwrap_or("?"),
        letter.receive_count.as_deref().unwrap_or("?"),
        letter.reason
    );
    println!(
        "  (redrive with: evctl dlq redrive --domain payment --event {})",
        letter.event_id.as_deref().unwrap_or("?")
    );
    trust(&api, &loan).await?;
    // The loan's and its payments' events so far: what the subscription must receive.
    let story = api
        .history("Loan", &loan)
        .await?
        .iter()
        .filter(|e| {
            let t = e["eventType"].as_str().unwrap_or("");
            t.starts_with("Loan.") || t.starts_with("Payment.") || t.starts_with("PaymentSchedule.")
        })
        .count();
    webhook::subscription_step(&api, started_at, story).await?;
    console_addresses(&api, &loan, &correlation);
    println!("\n✔ demo complete");
    Ok(())
}

fn schedule_principals(h: &[Value]) -> Vec<(u64, String, String)> {
    // The effective schedule: each PaymentSchedule.Generated replaces the installments from
    // its first number on.
    let mut out: Vec<(u64, String, String)> = Vec::new();
    for sch in h
        .iter()
        .filter(|e| e["eventType"] == "PaymentSchedule.Generated")
    {
        let payments = sch["payload"]["payments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let first = payments
            .first()
            .and_then(|p| p["number"].as_u64())
            .unwrap_or(1);
        out.truncate(first.saturating_sub(1) as usize);
        out.extend(payments.iter().map(|p| {
            (
                p["number"].as_u64().unwrap_or(0),
                s(&p["dueDate"]),
                s(&p["principal"]),
            )
        }));
    }
    out
}

fn sum_money(values: impl Iterator<Item = String>) -> String {
    let total: lending_events::Money = values
        .filter_map(|v| v.parse::<lending_events::Money>().ok())
        .sum();
    total.to_string()
}

/// The draw of step 9 on the loan: its balance and schedule move with it.
async fn draw_moves_the_balance(api: &DemoClient, loan: &str) -> Result<(), String> {
    let h = api
        .wait_for_n("Loan", loan, "PaymentSchedule.Generated", 2)
        .await?;
    let schedules: Vec<&Value> = h
        .iter()
        .filter(|e| e["eventType"] == "PaymentSchedule.Generated")
        .collect();
    let latest = schedules[schedules.len() - 1];
    let st = api.state("Loan", loan).await?;
    println!(
        "  the disbursal adds to what the borrower owes: outstanding principal {}",
        s(&st["outstandingPrincipal"])
    );
    println!(
        "  PaymentSchedule.Generated {} supersedes {}: installments from #{} regenerated on the new balance",
        short_id(&s(&latest["payload"]["scheduleId"])),
        short_id(&s(&latest["payload"]["supersedes"])),
        latest["payload"]["payments"][0]["number"]
    );
    Ok(())
}

/// A construction loan drawn twice: each disbursal adds to the balance and regenerates the
/// installments due after it, so the schedule's principals sum to funded + disbursed.
async fn construction_story(api: &DemoClient, short: &str) -> Result<(), String> {
    println!(
        "\n▶ 10a. A construction loan drawn as the work is inspected: $600,000, $200,000 advanced"
    );
    let loan = format!("C-{short}");
    let borrower = format!("B-{short}");
    // Funded three months ago, so the draws (disbursed today, when approved) fall inside
    // its schedule.
    let funded_at = (chrono::Utc::now() - chrono::Months::new(3))
        .format("%Y-%m-%dT09:00:00Z")
        .to_string();
    let meta = json!({"userId": "officer-7", "correlationId": format!("construction-{short}"), "source": "demo"});
    api.publish(json!({"eventType": "Loan.Created", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "borrowerId": borrower, "amount": "600000.00", "interestRate": "8",
            "termMonths": 12, "amortization": "amortized", "paymentFrequency": "monthly",
            "loanType": "construction"}, "metadata": meta})).await?;
    api.publish(json!({"eventType": "Loan.Approved", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "approvedBy": "officer-7", "approvedAt": funded_at}, "metadata": meta})).await?;
    api.publish(json!({"eventType": "Loan.Funded", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan, "fundedAmount": "200000.00", "fundedAt": funded_at}, "metadata": meta})).await?;
    api.wait_for("Loan", &loan, "PaymentSchedule.Generated")
        .await?;
    for (n, amount) in [(1usize, "150000.00"), (2, "100000.00")] {
        let draw = format!("CD{n}-{short}");
        api.publish(
            json!({"eventType": "Draw.Requested", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"drawId": draw, "loanId": loan, "amount": amount}, "metadata": meta}),
        )
        .await?;
        let h = api.wait_for("Draw", &draw, "Inspection.Scheduled").await?;
        let inspection = h
            .iter()
            .find(|e| e["eventType"] == "Inspection.Scheduled")
            .map(|e| e["payload"]["inspectionId"].clone())
            .unwrap_or_default();
        api.publish(json!({"eventType": "Inspection.Completed", "aggregateType": "Draw", "aggregateId": draw,
            "payload": {"inspectionId": inspection, "drawId": draw, "result": "passed"}, "metadata": meta})).await?;
        api.wait_for("Draw", &draw, "Draw.Disbursed").await?;
        let h = api
            .wait_for_n("Loan", &loan, "PaymentSchedule.Generated", n + 1)
            .await?;
        let st = api.state("Loan", &loan).await?;
        let schedule = schedule_principals(&h);
        println!(
            "  draw {n} of {amount}: outstanding principal {}, available to draw {}, schedule principals sum {} (= funded 200000.00 + disbursed {})",
            s(&st["outstandingPrincipal"]),
            s(&st["draws"]["availableToDraw"]),
            sum_money(schedule.iter().map(|i| i.2.clone())),
            s(&st["disbursedDrawsTotal"])
        );
    }
    let h = api.history("Loan", &loan).await?;
    println!("  {:>3}  {:<10} {:>12}", "#", "due", "principal");
    for (number, due, principal) in schedule_principals(&h) {
        println!("  {number:>3}  {due:<10} {principal:>12}");
    }
    Ok(())
}

/// More than the payoff: the loan is paid off, the rest held and refunded, nothing
/// dead-lettered.
async fn over_payment_is_held_and_refunded(
    api: &DemoClient,
    loan: &str,
    clients: &event_adapters::config::Clients,
    config: &event_adapters::config::Config,
) -> Result<(), String> {
    let on = chrono::Utc::now().date_naive();
    println!("\n▶ 10b. The payoff quote (GET /loans/{loan}/payoff?on={on}) and an over-payment");
    let (status, quote) = api
        .call("GET", &format!("/loans/{loan}/payoff?on={on}"), None)
        .await?;
    if status != 200 {
        return Err(format!("payoff quote: {status} {quote}"));
    }
    for k in [
        "principal",
        "billedInterest",
        "accruedInterest",
        "fees",
        "excessHeld",
        "total",
        "perDiem",
        "goodThrough",
    ] {
        println!("  {k:<16} {}", s(&quote[k]));
    }
    let total: lending_events::Money = s(&quote["total"])
        .parse()
        .map_err(|e| format!("quote total: {e}"))?;
    let paid = total + lending_events::Money::from_cents(100_000);
    api.publish(
        json!({"eventType": "Payment.Received", "eventVersion": 2, "aggregateType": "Loan",
        "aggregateId": loan, "payload": {"paymentId": "PAY-PAYOFF", "loanId": loan, "amount": paid,
            "paymentMethod": "wire", "receivedAt": format!("{on}T12:00:00Z")}}),
    )
    .await?;
    let h = api.wait_for("Loan", loan, "Refund.Due").await?;
    let h = if h.iter().any(|e| e["eventType"] == "Loan.PaidOff") {
        h
    } else {
        api.wait_for("Loan", loan, "Loan.PaidOff").await?
    };
    for e in h.iter().filter(|e| {
        matches!(
            e["eventType"].as_str(),
            Some("Payment.ExcessHeld" | "Refund.Due" | "Loan.PaidOff")
        )
    }) {
        let p = &e["payload"];
        println!(
            "  {:<20} {}",
            s(&e["eventType"]),
            match e["eventType"].as_str() {
                Some("Loan.PaidOff") => format!("final payment {}", s(&p["finalPaymentId"])),
                _ => format!("{} ({})", s(&p["amount"]), s(&p["reason"])),
            }
        );
    }
    let dlq = config
        .dlq_url(Domain::Payment)
        .unwrap_or_default()
        .to_string();
    let letters = event_adapters::operator::dead_letters::list(
        &clients.sqs,
        &clients.dynamodb,
        &config.table,
        Domain::Payment,
        &dlq,
        100,
    )
    .await
    .map_err(|e| e.to_string())?
    .into_iter()
    .filter(|l| l.aggregate.as_deref().is_some_and(|a| a.contains(loan)))
    .count();
    println!(
        "  paid {paid} on a payoff of {total}: the loan is paid off, the rest refunded; {letters} message(s) of this loan in the payment DLQ"
    );
    Ok(())
}

/// Where to see this run in the browser console (served by the same API; `run-demo.sh
/// --keep` keeps it up). The feed's address is also left in `localstack/.state/demo-console.txt`
/// for the script's last line.
fn console_addresses(api: &DemoClient, loan: &str, correlation: &str) {
    let at = |path: &str| format!("{}{path}?tenant={}", api.base, api.tenant);
    println!("\n▶ 16. The console (bash localstack/run-demo.sh --keep keeps it up)");
    println!("  live feed     {}", at("/console"));
    println!(
        "  the loan      {}",
        at(&format!("/console/aggregates/Loan/{loan}"))
    );
    println!(
        "  its funding   {}",
        at(&format!("/console/correlations/{correlation}"))
    );
    println!("  dead letters  {}", at("/console/dead-letters"));
    println!("  handlers      {}", at("/console/handlers"));
    println!("  subscriptions {}", at("/console/subscriptions"));
    let state = std::path::Path::new("localstack/.state");
    if state.is_dir() {
        let _ = std::fs::write(state.join("demo-console.txt"), at("/console"));
    }
}

/// Derived ids are UUIDs: their first 8 characters are enough on screen.
fn short_id(id: &str) -> &str {
    if id.len() == 36 {
        &id[..8]
    } else {
        id
    }
}

fn correlation_id(e: &Value) -> String {
    s(&e["metadata"]["correlationId"])
}

/// Who may do what: a forged decision refused, the principal on every stored event, and an
/// operator action recorded as an event.
async fn trust(api: &DemoClient, loan: &str) -> Result<(), String> {
    println!("\n▶ 14. Trust: producers, principals, operator actions");
    let forged = json!({"eventType": "Payment.Applied", "aggregateType": "Loan", "aggregateId": loan,
        "payload": {"loanId": loan}});
    let (status, body) = api.call("POST", "/events", Some(&forged)).await?;
    println!(
        "  ✗ a client posting Payment.Applied (the payment handler's decision): {status} {} on {}",
        body["error"]["code"].as_str().unwrap_or("?"),
        body["error"]["field"].as_str().unwrap_or("?")
    );
    for e in api.history("Loan", loan).await?.iter().take(4) {
        println!(
            "  {:<26} principal {}",
            e["eventType"].as_str().unwrap_or("?"),
            e["metadata"]["principal"].as_str().unwrap_or("?")
        );
    }
    let (status, _) = api
        .call(
            "PUT",
            "/handlers/notifications",
            Some(&json!({"enabled": true})),
        )
        .await?;
    let (_, ops) = api
        .call(
            "GET",
            "/events?type=Ops.HandlerSwitched&from=2000-01-01T00:00:00Z",
            None,
        )
        .await?;
    let recorded = ops["events"].as_array().map_or(0, Vec::len);
    println!(
        "  PUT /handlers/notifications {{\"enabled\": true}}: {status}; Ops.HandlerSwitched events on this tenant's Ops stream: {recorded}"
    );
    Ok(())
}
