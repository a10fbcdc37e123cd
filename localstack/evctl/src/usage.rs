//! The usage text of `evctl help`; each command's lines are also in its entry of
//! [`crate::args::COMMANDS`] (a unit test keeps them in step).

pub const USAGE: &str = "\
evctl: operate the LendingOS event backbone

USAGE: evctl [global options] <command> [arguments]

Events (through the HTTP API):
  publish --file F.json                      publish one event or {\"events\": [...]} from a file ('-' = stdin)
  publish --type T --aggregate Type/Id --payload JSON [--version N] [--correlation C] [--event-id UUID]
  history <AggregateType> <AggregateId>      the aggregate's events in order
  state <AggregateType> <AggregateId>        the folded state
  event <eventId>                            one event
  events --type T [--from RFC3339] [--to RFC3339] [--limit N] [--cursor C]
  trace <correlationId>                      the causal tree with each handler's outcome
  replay --aggregate Type/Id | --type T --from X --to Y
         [--handlers h1,h2] [--subscriptions id1,id2] [--rerun] [--dry-run]
  projections rebuild <name> [--async]       re-derive a read model (loan-summary) from the events;
         --async: start it as a job and poll its progress until it is done

Subscriptions of other systems (through the HTTP API, scope subscriptions:admin):
  subscriptions create --name N --url URL | --queue-url Q [--filter JSON|F.json]
         [--format cloudevents|envelope] [--start-from RFC3339]   (the secret is shown once)
  subscriptions list                         the tenant's subscriptions
  subscriptions show <id>                    one subscription, its filter and circuit
  subscriptions pause <id> | resume <id>     deliveries wait while paused
  subscriptions delete <id>
  subscriptions rotate-secret <id>           a new secret; the old one signs for a grace period
  subscriptions deliveries <id> [--limit N] [--cursor C]   the delivery log, newest first

Dead letters and handlers (DynamoDB and SQS directly):
  dlq list [--domain D]                      messages in each DLQ with event, handler, reason
  dlq redrive [--domain D] (--all | --event ID ... | --message ID ...) [--principal P]
  dlq purge --domain D --yes [--principal P] delete every message of that DLQ
  handler list                               handlers, domains and switches
  handler enable <name> | handler disable <name> [--principal P]
  handler stats [<name> ...] [--days N] [--day YYYY-MM-DD]

Global options (environment variable in brackets):
  --api URL        HTTP API base [EVCTL_API, default http://127.0.0.1:3000]
  --tenant T       tenant, sent as X-Tenant-Id (local runner) [EVCTL_TENANT]
  --token JWT      bearer token for a deployed API (tenant from its tenantId claim) [EVCTL_TOKEN]
  --prefix P       resource prefix: table P-events, queues P-<domain>[-dlq].fifo
                   [EVCTL_PREFIX, default lendingos; a deployed stage is lendingos-<stage>]
  --table NAME     the events table, instead of P-events
  --dlq-url URL    one DLQ by URL (with --domain), instead of P-<domain>-dlq.fifo
  --source-url URL where dlq redrive sends (with --domain), instead of P-<domain>.fifo
  --json           machine-readable output on stdout

With --tenant, the dlq commands see and touch only that tenant's messages. A redrive, a
purge and a handler switch are recorded as Ops.* events on the tenant's Ops stream (without
--tenant: on each affected tenant's, a switch on _platform's), as principal evctl:<P>
(P from --principal, default $USER). Listing records nothing.

The dlq and handler commands need AWS credentials and a region (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY or AWS_PROFILE; AWS_REGION), and AWS_ENDPOINT_URL for LocalStack
(`. localstack/env.sh` sets all of them).

Exit codes: 0 ok; 1 the API or AWS refused (4xx/5xx, AWS error); 2 usage error;
3 not found (404, unknown queue or handler); 4 cannot reach the API or AWS;
5 confirmation required (purge without --yes).
";
